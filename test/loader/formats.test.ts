// The loader on real processes: ESM, CommonJS, both mixed, NODE_OPTIONS, LIVEPATCH_DISABLE, a module that
// fails to instrument, and patch modules that import 'livepatch' from outside any project.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { esmHookKind } from '../../src/loader/features.js';
import { registerEntry, repoRoot, tmpProject } from '../helpers.js';
import { REPORT, runApp } from './app.js';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const pkg = JSON.stringify({ name: 'shop', type: 'module' });
// Node 22+ can also be run through the Node 20 path (module.register), so both paths are tested there.
const paths: Record<string, string>[] = process.versions.node.startsWith('20.')
  ? [{}]
  : [{}, { LIVEPATCH_LOADER_HOOKS: 'async' }];

for (const hooks of paths) {
  const label = hooks.LIVEPATCH_LOADER_HOOKS === 'async' ? ' (module.register path)' : '';

  test(`ESM: every module of the app registers once, with its id and content hash${label}`, async (t) => {
    const lib = 'export function price(n) { return n * 2; }\n';
    const p = tmpProject({
      'package.json': pkg,
      'src/lib.js': lib,
      'src/main.js': `import { price } from './lib.js';\nconsole.log('price', price(3));\n${REPORT}`,
    });
    t.after(p.cleanup);
    const r = await runApp(p.dir, ['src/main.js'], hooks);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^price 6$/m);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.lp?.modules, ['shop/src/lib.js', 'shop/src/main.js']);
    assert.equal(r.lp?.hashes['shop/src/lib.js'], sha(lib));
  });

  test(`ESM import cycle: a hoisted function called before its module evaluates runs, as without the loader${label}`, async (t) => {
    const p = tmpProject({
      'package.json': pkg,
      // main.js imports b.js, which calls main.js's helper before main.js has started evaluating.
      'src/main.js': `import { fromB } from './b.js';\nexport function helper(x) { return [x].map((y) => y * 2)[0]; }\nconsole.log('fromB', fromB, helper(1));\n${REPORT}`,
      'src/b.js': "import { helper } from './main.js';\nexport const fromB = helper(21);\n",
    });
    t.after(p.cleanup);
    const r = await runApp(p.dir, ['src/main.js'], hooks);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^fromB 42 2$/m);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.lp?.modules, ['shop/src/b.js', 'shop/src/main.js']);
  });

  test(`mixed: ESM imports CommonJS, CommonJS requires ESM; each registers exactly once${label}`, async (t) => {
    const p = tmpProject({
      'package.json': JSON.stringify({ name: 'mix' }),
      'a.mjs': `import b from './b.cjs';\nimport { createRequire } from 'node:module';\nconst req = createRequire(import.meta.url);\nconsole.log('sum', b.twice(2) + req('./c.cjs').v + req('./b.cjs').twice(0));\n${REPORT}`,
      'b.cjs': `exports.twice = (n) => n * 2;\n`,
      'c.cjs': `const { ten } = require('./d.mjs');\nexports.v = ten();\n`,
      'd.mjs': `export function ten() { return 10; }\n`,
    });
    t.after(p.cleanup);
    const r = await runApp(p.dir, ['a.mjs'], hooks);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^sum 14$/m);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual([...(r.lp?.modules ?? [])].sort(), ['mix/a.mjs', 'mix/b.cjs', 'mix/c.cjs', 'mix/d.mjs']);
  });
}

test('CommonJS: require keeps require.cache; NODE_OPTIONS works as well as --import', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'cjs-app' }),
    'lib/util.js': `module.exports = function inc(n) { return n + 1; };\n`,
    'main.js': `#!/usr/bin/env node\n'use strict';\nconst inc = require('./lib/util.js');\nconsole.log('inc', inc(1), Object.keys(require.cache).length);\n${REPORT}`,
  });
  t.after(p.cleanup);
  for (const r of [
    await runApp(p.dir, ['main.js']),
    await runApp(
      p.dir,
      ['main.js'],
      { NODE_OPTIONS: `--import ${pathToFileURL(registerEntry).href}` },
      { preload: false },
    ),
    // Both at once (a wrapper sets NODE_OPTIONS and the command line has it too): the hooks go in once.
    await runApp(p.dir, ['main.js'], { NODE_OPTIONS: `--import ${pathToFileURL(registerEntry).href}` }),
  ]) {
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^inc 2 2$/m);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.lp?.modules, ['cjs-app/main.js', 'cjs-app/lib/util.js']);
  }
});

test('LIVEPATCH_DISABLE=1 turns the loader off entirely', async (t) => {
  const p = tmpProject({ 'package.json': pkg, 'main.js': `console.log('ran');\n${REPORT}` });
  t.after(p.cleanup);
  const r = await runApp(p.dir, ['main.js'], { LIVEPATCH_DISABLE: '1' });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.lp, null, 'no registry at all');
  assert.equal(r.err, '');
});

test('a module that cannot be instrumented loads as it is, after one warning naming it', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'bad' }),
    // '__lp$' is reserved for instrumented code (abi.md §1): the instrumenter refuses the module.
    'reserved.js': `const __lp$mine = 41;\nexports.answer = () => __lp$mine + 1;\n`,
    'broken.js': `exports.x = (;\n`,
    'main.js': `console.log('answer', require('./reserved.js').answer());\ntry { require('./broken.js'); } catch (e) { console.log('caught', e.name); }\n${REPORT}`,
  });
  t.after(p.cleanup);
  const r = await runApp(p.dir, ['main.js']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^answer 42$/m);
  assert.match(r.out, /^caught SyntaxError$/m);
  assert.equal(r.warnings.length, 2, r.err);
  assert.match(
    r.warnings[0] ?? '',
    /^livepatch: failed to instrument module 'bad\/reserved\.js': .+; loading it uninstrumented$/,
  );
  assert.match(r.warnings[1] ?? '', /^livepatch: failed to instrument module 'bad\/broken\.js': /);
  assert.deepEqual(r.lp?.modules, ['bad/main.js']);
  assert.deepEqual(
    r.lp?.notes.map(([id, status]) => [id, status]),
    [
      ['bad/reserved.js', 'failed'],
      ['bad/broken.js', 'failed'],
    ],
  );
});

test("while a patch module is imported, 'livepatch' resolves to this copy from anywhere; marked, it is not instrumented", async (t) => {
  const p = tmpProject({
    'app/package.json': pkg,
    'app/main.js': `const url = new URL('./patches/fix.js', import.meta.url);\nconst hold = globalThis[Symbol.for('livepatch.loader')].selfResolve;\nlet release = hold();\nconst plain = await import(url.href);\nrelease();\nurl.searchParams.set('livepatch-patch', '1');\nrelease = hold();\nconst m = await import(url.href);\nrelease();\nrelease();\nurl.searchParams.set('livepatch-patch', '2');\nconst outside = await import(url.href).then(() => 'resolved', (e) => e.code);\nconsole.log('where', m.where, m !== plain);\nconsole.log('outside', outside);\n${REPORT}`,
    'app/patches/fix.js': `import * as lp from 'livepatch';\nexport const where = import.meta.resolve('livepatch');\nexport const api = Object.keys(lp).length;\n`,
  });
  t.after(p.cleanup);
  const r = await runApp(join(p.dir, 'app'), ['main.js']);
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out.match(/^where (.*) true$/m)?.[1],
    pathToFileURL(join(repoRoot, 'dist/src/index.js')).href,
  );
  // Not held (a second call of a release changes nothing): on 22.15+ Node's own resolution, which fails here, so
  // that the app's require() and import stay on Node's fast path; the Node 20 hooks thread resolves it always.
  const expected = esmHookKind() === 'sync' ? 'ERR_MODULE_NOT_FOUND' : 'resolved';
  assert.match(r.out, new RegExp(`^outside ${expected}$`, 'm'));
  // Imported plainly it is an app file like any other; with the mark it is left alone.
  assert.deepEqual(r.lp?.modules, ['shop/main.js', 'shop/patches/fix.js']);
});

test('a worker thread is instrumented with its own registry; only the main thread serves the control socket', async (t) => {
  const p = tmpProject({
    'package.json': pkg,
    'main.js': `import { Worker, isMainThread } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
export function work() { return isMainThread ? 'main' : 'worker'; }
const r = globalThis[Symbol.for('livepatch.registry')];
console.log(work(), JSON.stringify(r.instances.map((i) => i.id)));
if (isMainThread) {
  await new Promise((resolve) => new Worker(new URL(import.meta.url)).on('exit', resolve));
  const sock = join(process.env.XDG_RUNTIME_DIR, 'livepatch', process.pid + '.sock');
  console.log('socket', existsSync(sock));
  process.exit(0);
}
`,
  });
  t.after(p.cleanup);
  const r = await runApp(p.dir, ['main.js']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(r.warnings, []);
  assert.match(r.out, /^main \["shop\/main.js"\]$/m);
  assert.match(r.out, /^worker \["shop\/main.js"\]$/m);
  assert.match(r.out, /^socket true$/m);
});

test('code compiled under a name that is no file is left alone without a warning', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'gen' }),
    'main.js': `const Module = require('node:module');
const file = require('node:path').join(__dirname, 'generated.js');
const m = new Module(file, module);
m._compile('module.exports = function gen() { return 7; };', file);
console.log('gen', m.exports());
${REPORT}`,
  });
  t.after(p.cleanup);
  const r = await runApp(p.dir, ['main.js']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^gen 7$/m);
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.lp?.modules, ['gen/main.js']);
  assert.deepEqual(r.lp?.notes, [['gen/generated.js', 'skipped', 'no such file on disk to hash']]);
});

test('an app started through a symlinked directory (current → release) is still the app', async (t) => {
  const p = tmpProject({
    'release-1/package.json': JSON.stringify({ name: 'deployed' }),
    'release-1/main.js': `require('./lib.js');\n${REPORT}`,
    'release-1/lib.js': `exports.f = function f() {};\n`,
  });
  t.after(p.cleanup);
  symlinkSync(join(p.dir, 'release-1'), join(p.dir, 'current'));
  const r = await runApp(p.dir, ['current/main.js']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(r.lp?.modules, ['deployed/main.js', 'deployed/lib.js']);
});
