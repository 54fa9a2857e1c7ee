// `livepatch cache warm`: a real app with Express in a temp dir, warmed, then started under the loader — every
// instrumented module must come from the cache, and a file that cannot be instrumented is reported, not fatal.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as nodeModule from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import type { WarmReport } from '../../src/cli/cache.js';
import { features } from '../../src/loader/features.js';
import { cliEntry, registerEntry, repoRoot, spawnNode, tmpProject } from '../helpers.js';
import { cleanEnv, REPORT, runApp } from '../loader/app.js';

function project(instrument: string[]) {
  const p = tmpProject({
    'package.json': JSON.stringify({
      name: 'warm-app',
      dependencies: { express: '*' },
      livepatch: { instrument },
    }),
    'app.cjs': `const express = require('express');\nconst { greet } = require('./lib/greet.js');\nconst app = express();\napp.get('/', (req, res) => res.send(greet('x')));\nmodule.exports = app;\n`,
    'main.mjs': `import { shout } from './lib/shout.mjs';\nimport app from './app.cjs';\nconsole.log(shout(typeof app));\n${REPORT}`,
    'lib/greet.js': `exports.greet = function greet(n) { return 'hello ' + n; };\n`,
    'lib/shout.mjs': `export const shout = (s) => s.toUpperCase();\n`,
    'lib/quiet.js': `// livepatch: notrace-file\nexports.q = function q() {};\n`,
    // Never loaded by the app: it only has to be reported.
    'lib/broken.js': `exports.broken = function ( { ;\n`,
    'lib/types.ts': `export const n: number = 1;\n`,
    'README.md': '# warm-app\n',
  });
  // Express from the repository's own node_modules: its dependencies resolve from there, through the link.
  mkdirSync(join(p.dir, 'node_modules'));
  symlinkSync(join(repoRoot, 'node_modules/express'), join(p.dir, 'node_modules/express'));
  return p;
}

async function warm(dir: string, env: NodeJS.ProcessEnv, ...args: string[]) {
  const child = spawnNode([cliEntry, 'cache', 'warm', dir, '--json', ...args], { cwd: dir, env });
  const code = await child.exited;
  assert.equal(code, 0, child.stderr());
  return { report: JSON.parse(child.stdout()) as WarmReport, err: child.stderr() };
}

const loaderLines = (err: string) => err.split('\n').filter((l) => /loader: '[^']+': /.test(l));

/** Starts the app under the loader and checks that every module it looked up (at least `min`) was a cache hit. */
async function startsWarm(dir: string, env: NodeJS.ProcessEnv, min: number) {
  const run = await runApp(dir, ['main.mjs'], { ...env, NODE_DEBUG: 'livepatch' });
  assert.equal(run.code, 0, run.err);
  const lines = loaderLines(run.err);
  assert.ok(lines.length > min, run.err);
  assert.deepEqual(
    lines.filter((l) => !l.endsWith(': cache hit')),
    [],
    'every module is a cache hit, none is instrumented at start',
  );
  return { run, lines };
}

for (const hooks of ['default', 'async'] as const) {
  test(`after 'cache warm' a start takes every instrumented module from the cache (${hooks} hooks)`, async (t) => {
    const p = project(['express']);
    t.after(p.cleanup);
    const env = cleanEnv(p.dir, hooks === 'async' ? { LIVEPATCH_LOADER_HOOKS: 'async' } : {});
    const { report, err } = await warm(p.dir, env, '--workers', '2');
    assert.equal(report.appRoot, p.dir);
    assert.equal(report.cacheDir, join(p.dir, '.lp-run/cache'));
    if (hooks === 'async') assert.equal(report.hooks, 'async');
    // express 5: index.js and lib/{express,application,request,response,utils,view}.js; the app: 5 files.
    assert.ok(report.instrumented >= 7 + 4, JSON.stringify(report));
    assert.equal(report.cached, 0);
    assert.equal(report.notraceFile, 1);
    assert.deepEqual(
      report.failed.map((f) => f.file),
      [join(p.dir, 'lib/broken.js')],
    );
    assert.match(report.failed[0]?.reason ?? '', /Unexpected token/);
    assert.match(err, /failed to instrument module 'warm-app\/lib\/broken\.js'/);
    // Where this Node strips types itself and the hooks are registerHooks, lib/types.ts is prepared as Node would
    // run it (its own test below); else it is left to tsx, at run time.
    assert.equal(
      report.skipped['TypeScript (instrumented as tsx compiles it, at run time)'],
      hooks === 'default' && stripsTypes ? undefined : 1,
    );
    assert.ok((report.skipped['not JavaScript'] ?? 0) >= 2); // package.json, README.md
    assert.ok(report.packagesFiltered > 10, 'the dependencies of express are not selected');

    const { run, lines } = await startsWarm(p.dir, env, 0);
    assert.match(run.out, /^FUNCTION$/m);
    const registered = run.lp?.modules ?? [];
    assert.ok(registered.includes('express/lib/application.js'), registered.join(', '));
    assert.ok(registered.includes('warm-app/lib/greet.js'));
    assert.ok(registered.includes('warm-app/lib/shout.mjs'));
    // Each registered module was looked up and found (a module may be reported twice on the async path).
    for (const id of registered)
      assert.ok(
        lines.some((l) => l.includes(`'${id}': cache hit`)),
        id,
      );
    // The symbol tables kept beside the code are found too: the start can list what can be patched.
    assert.deepEqual(run.lp?.funcs['warm-app/lib/greet.js'], ['exports.greet']);

    // Warming again finds everything in place.
    const again = await warm(p.dir, env);
    assert.equal(again.report.instrumented, 0);
    assert.equal(again.report.cached, report.instrumented);
  });
}

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/** Node runs .ts files itself (type stripping on by default) and the loader uses registerHooks: 22.18+, 23.6+. */
const stripsTypes = major > 22 || (major === 22 && minor >= 18);

test(
  "'cache warm' prepares TypeScript as Node's type stripping runs it: `node main.ts` then starts from the cache",
  { skip: !stripsTypes },
  async (t) => {
    const p = tmpProject({
      // No "type": main.ts and lib/price.ts are undecided, and Node's syntax detection makes them ES modules.
      'package.json': JSON.stringify({ name: 'ts-app' }),
      'main.ts': `import { price } from './lib/price.ts';\nimport { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nconst { tax } = require('./lib/tax.cts');\nconst { rate } = require('./lib/rate.ts');\nconsole.log('total', tax(price(rate)));\n${REPORT}`,
      // CommonJS in a .ts under no "type": Node hands it over undecided; a warm start finds it without stripping.
      'lib/rate.ts': `function rate(): number {\n  return 2;\n}\nmodule.exports = { rate: rate() };\n`,
      'lib/price.ts': `export function price(qty: number): number {\n  return qty * 5;\n}\n`,
      'lib/tax.cts': `function tax(n: number): number {\n  return n * 2;\n}\nmodule.exports = { tax };\n`,
      'lib/esm/package.json': JSON.stringify({ type: 'module' }),
      'lib/esm/unused.ts': `export const unused = (s: string): string => s;\n`,
      'lib/colors.ts': `export enum Color { Red }\n`,
      'lib/view.tsx': `export const v = 1;\n`,
    });
    t.after(p.cleanup);
    const env = cleanEnv(p.dir);
    const { report } = await warm(p.dir, env);
    // main.ts, price.ts, tax.cts, rate.ts, esm/unused.ts
    assert.equal(report.instrumented, 5, JSON.stringify(report));
    assert.equal(report.skipped['TypeScript (instrumented as tsx compiles it, at run time)'], 1); // view.tsx
    assert.equal(
      report.skipped[
        'TypeScript with syntax that type stripping cannot run (an enum, a namespace, a parameter property) is not instrumented'
      ],
      1,
    );
    assert.equal(report.compiled, 5);
    // Counts the calls of Node's stripper in the process: a warm start must not strip at all.
    const counter = `data:text/javascript,${encodeURIComponent(
      "const m = process.getBuiltinModule('node:module'); const strip = m.stripTypeScriptTypes; let n = 0;" +
        'm.stripTypeScriptTypes = (...a) => { n++; return strip(...a); };' +
        "process.on('exit', () => console.log('strips', n));",
    )}`;
    const run = await runApp(
      p.dir,
      ['main.ts'],
      { ...env, NODE_DEBUG: 'livepatch' },
      { before: ['--import', counter] },
    );
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /^total 20$/m);
    assert.match(run.out, /^strips 0$/m, 'the entries are found by the .ts file alone: nothing is stripped');
    assert.deepEqual([...(run.lp?.modules ?? [])].sort(), [
      'ts-app/lib/price.ts',
      'ts-app/lib/rate.ts',
      'ts-app/lib/tax.cts',
      'ts-app/main.ts',
    ]);
    const lines = loaderLines(run.err);
    assert.equal(lines.length, 4, run.err);
    assert.deepEqual(
      lines.filter((l) => !l.endsWith(': cache hit')),
      [],
      'every module is a cache hit, none is instrumented at start',
    );
  },
);

test("'cache warm' with LIVEPATCH_INSTRUMENT='*' covers every dependency a start loads", async (t) => {
  const p = project([]);
  t.after(p.cleanup);
  const env = cleanEnv(p.dir, { LIVEPATCH_INSTRUMENT: '*' });
  const { report } = await warm(p.dir, env);
  assert.ok(report.instrumented > 100, JSON.stringify({ ...report, failed: report.failed.length }));
  await startsWarm(p.dir, env, 50);
});

test("'cache warm' compiles into Node's compile cache without running anything; the first start takes V8's code", async (t) => {
  const p = project(['express']);
  t.after(p.cleanup);
  // A file of the app that a start does not load, with a side effect at its top level: warming must not run it.
  const ran = join(p.dir, 'RAN');
  writeFileSync(
    join(p.dir, 'lib/effect.js'),
    `require('fs').writeFileSync(${JSON.stringify(ran)}, 'ran');\nexports.effect = function effect() {};\n`,
  );
  // The same in ES modules: one that imports something, and one that imports nothing.
  writeFileSync(
    join(p.dir, 'lib/effect.mjs'),
    `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(ran)}, 'ran');\nexport function effect() {}\n`,
  );
  writeFileSync(
    join(p.dir, 'lib/leaf.mjs'),
    `process.getBuiltinModule('fs').writeFileSync(${JSON.stringify(ran)}, 'ran');\nexport function leaf() {}\n`,
  );
  const env = cleanEnv(p.dir);
  const { report } = await warm(p.dir, env);
  assert.equal(existsSync(ran), false, 'cache warm ran a module');
  if (typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache !== 'function') {
    assert.equal(report.compiled, null, 'Node 20 has no compile cache');
    return;
  }
  // express 5's seven CommonJS files, and the app's app.cjs, greet.js, effect.js and quiet.js (notrace, as is); with
  // module.registerHooks also its ES modules main.mjs, shout.mjs, effect.mjs and leaf.mjs.
  const esm = features.syncHooks.on ? 4 : 0;
  assert.ok((report.compiled ?? 0) >= 7 + 4 + esm, JSON.stringify(report));
  const run = await runApp(p.dir, ['main.mjs'], { ...env, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' });
  assert.equal(run.code, 0, run.err);
  const modules = features.syncHooks.on ? ['warm-app/lib/shout.mjs', 'warm-app/main.mjs'] : [];
  for (const file of ['express/lib/application.js', 'warm-app/lib/greet.js', ...modules].map((f) =>
    f.replace('warm-app', p.dir),
  ))
    assert.match(
      run.err,
      new RegExp(`for (CommonJS |ESM )?\\S*${file.replace(/[./]/g, '\\$&')} was accepted`),
      file,
    );
  assert.doesNotMatch(run.err, /\/express\/lib\/application\.js[^\n]*(miss|rejected)/);
  assert.equal(existsSync(ran), false);

  const off = await warm(p.dir, { ...env, LIVEPATCH_COMPILE_CACHE: 'off' });
  assert.equal(off.report.compiled, null);
});

test('a cache warmed as root serves a service that runs as another user: readable by all, writable by its owner', async (t) => {
  const p = project(['express']);
  t.after(p.cleanup);
  const env = cleanEnv(p.dir);
  delete env.LIVEPATCH_CACHE_DIR; // the default beside the app: node_modules/.cache/livepatch
  const { report } = await warm(p.dir, env);
  assert.equal(report.cacheDir, join(p.dir, 'node_modules/.cache/livepatch'));
  const entries = join(report.cacheDir, 'v5');
  assert.equal(statSync(entries).mode & 0o777, 0o755);
  const names = readdirSync(entries);
  assert.ok(names.length >= report.instrumented);
  for (const name of names) assert.equal(statSync(join(entries, name)).mode & 0o777, 0o644, name);
  if (process.getuid?.() !== 0) {
    t.diagnostic('not root: the start as another user needs root to switch users, and is not run');
    return;
  }
  // The Dockerfile pattern: RUN livepatch cache warm (as root), then USER node. Here: nobody.
  const nobody = 65534;
  chmodSync(p.dir, 0o755);
  const run = mkdtempSync(join(tmpdir(), 'lp-run-nobody-'));
  chownSync(run, nobody, nobody);
  t.after(() => rmSync(run, { recursive: true, force: true }));
  const child = spawnNode(['--import', registerEntry, 'main.mjs'], {
    cwd: p.dir,
    uid: nobody,
    gid: nobody,
    env: { ...env, XDG_RUNTIME_DIR: run, LIVEPATCH_INSTALL_DIR: 'off', NODE_DEBUG: 'livepatch' },
  });
  assert.equal(await child.exited, 0, child.stderr());
  const lines = loaderLines(child.stderr());
  assert.ok(lines.length > 7, child.stderr());
  assert.deepEqual(
    lines.filter((l) => !l.endsWith(': cache hit')),
    [],
    'every module is a cache hit for the other user',
  );
  assert.doesNotMatch(child.stderr(), /cannot write|not private|cannot use/);
  // Node's compile cache is per user (a directory named by the uid): the other user's start does not find root's.
  if (report.compiled !== null) assert.match(child.stderr(), /compile cache failed: .*permission denied/i);
});

test("'cache warm --prune' removes what this tree no longer needs, and a start still finds every entry", async (t) => {
  const p = project(['express']);
  t.after(p.cleanup);
  const env = cleanEnv(p.dir);
  const { report } = await warm(p.dir, env);
  const root = report.cacheDir;
  const entries = join(root, 'v5');
  const before = readdirSync(entries);
  assert.ok(before.length >= report.instrumented, before.join(', '));
  // An old cache: every entry written an hour ago, plus what older releases and a crash left behind.
  const hourAgo = new Date(Date.now() - 3600_000);
  const plant = (name: string, old: boolean) => {
    writeFileSync(join(entries, name), '// livepatch-cache 0 0 - a\n');
    if (old) utimesSync(join(entries, name), hourAgo, hourAgo);
  };
  plant('0'.repeat(64), true); // an entry of a file that changed long ago
  plant(`${'1'.repeat(64)}.123.abc.tmp`, true); // a write a crash interrupted
  plant('2'.repeat(64), false); // just written by a start running beside the prune: kept
  mkdirSync(join(root, 'v4'));
  writeFileSync(join(root, 'v4', 'x'), 'old format');
  for (const e of before) utimesSync(join(entries, e), hourAgo, hourAgo);
  // A new release of one file: its old entry is no longer needed.
  writeFileSync(join(p.dir, 'lib/greet.js'), `exports.greet = function greet(n) { return 'hi ' + n; };\n`);

  const pruned = await warm(p.dir, env, '--prune');
  assert.equal(pruned.report.instrumented, 1, 'only the changed file');
  assert.deepEqual(pruned.report.pruned, {
    entries: 3,
    bytes: pruned.report.pruned?.bytes,
    formats: ['v4'],
    keptYoung: 1,
  });
  assert.ok((pruned.report.pruned?.bytes ?? 0) > 0);
  const after = new Set(readdirSync(entries));
  assert.ok(!after.has('0'.repeat(64)) && after.has('2'.repeat(64)));
  // The changed file's new entry took its old one's place; the young stranger stays.
  assert.equal(after.size, before.length + 1);
  assert.deepEqual(
    readdirSync(root).filter((d) => /^v\d+$/.test(d)),
    ['v5'],
  );

  await startsWarm(p.dir, env, 5);
  assert.match(
    await (async () => {
      const child = spawnNode([cliEntry, 'cache', 'warm', p.dir, '--prune'], { cwd: p.dir, env });
      await child.exited;
      return child.stdout();
    })(),
    /\n {2}pruned: 0 entries this tree does not need \(0 KB\); 1 written in the last minute kept/,
  );
});

test("'cache' usage errors exit 2 and name the problem", async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), tty: false };
  assert.equal(await main(['cache', 'warm', '--workers', '0'], io), 2);
  assert.match(err.join('\n'), /'--workers' expects a number of threads >= 1, not '0'/);
  assert.equal(await main(['cache', 'cool'], io), 2);
  assert.match(err.join('\n'), /unknown 'cache' command 'cool'/);
  assert.equal(await main(['cache', 'warm', '/no/such/dir'], io), 1);
  assert.match(err.join('\n'), /no such directory '\/no\/such\/dir'/);
  assert.equal(await main(['cache', 'help'], io), 0);
  assert.match(out.join('\n'), /usage: livepatch cache warm/);
});
