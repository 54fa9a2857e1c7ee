// The builder's inputs and its command line: diffs applied to a copy, a project's build step, flags, exit codes,
// --json, and signing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyDiff } from '../../src/build/diff-apply.js';
import { runBuild } from '../../src/build/index.js';
import { fixesOf } from '../../src/control/patches.js';
import { generateKeys, loadTrustedKeys, verifySource } from '../../src/control/trust.js';
import { isLivepatchError } from '../../src/errors.js';
import { fixture, repoRoot, tmpProject } from '../helpers.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runBuild(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

const LIB = ['function a() {', '  return 1;', '}', '', 'function b() {', '  return 2;', '}', ''].join('\n');

test('build: a git diff applies to a copy, at an offset, with new and deleted files', (t) => {
  const p = tmpProject({ 'lib/x.js': '// moved down by two lines\n\n' + LIB, 'old.js': 'gone\n' });
  t.after(p.cleanup);
  const diff = [
    'diff --git a/lib/x.js b/lib/x.js',
    'index 1..2 100644',
    '--- a/lib/x.js',
    '+++ b/lib/x.js',
    '@@ -5,3 +5,3 @@ function a() {',
    ' function b() {',
    '-  return 2;',
    '+  return 3;',
    ' }',
    '--- /dev/null',
    '+++ b/lib/new.js',
    '@@ -0,0 +1,1 @@',
    '+export const n = 1;',
    '--- a/old.js',
    '+++ /dev/null',
    '@@ -1 +0,0 @@',
    '-gone',
    '',
  ].join('\n');
  assert.deepEqual(applyDiff(p.dir, diff), ['lib/x.js', 'lib/new.js', 'old.js']);
  assert.equal(
    readFileSync(join(p.dir, 'lib/x.js'), 'utf8'),
    '// moved down by two lines\n\n' + LIB.replace('return 2', 'return 3'),
  );
  assert.equal(readFileSync(join(p.dir, 'lib/new.js'), 'utf8'), 'export const n = 1;\n');
  assert.equal(existsSync(join(p.dir, 'old.js')), false);
});

test('build: a hunk that does not fit is refused, naming the file and hunk', (t) => {
  const p = tmpProject({ 'x.js': LIB });
  t.after(p.cleanup);
  const diff = '--- x.js\n+++ x.js\n@@ -2,1 +2,1 @@\n-  return 42;\n+  return 43;\n';
  assert.throws(
    () => applyDiff(p.dir, diff),
    (e) =>
      isLivepatchError(e) &&
      e.code === 'EBUILD' &&
      e.message === "hunk #1 of 'x.js' does not apply at line 2",
  );
});

test('build: --source --diff builds from a tree and a fix; --dry-run writes nothing', async (t) => {
  const p = tmpProject({
    'fix.patch':
      "--- a/lib.js\n+++ b/lib.js\n@@ -1,3 +1,3 @@\n function greet(name) {\n-  return 'hello ' + name;\n+  return 'hi ' + name;\n }\n",
  });
  t.after(p.cleanup);
  const r = await run([
    '--source',
    fixture('build/cases/changed/old'),
    '--diff',
    join(p.dir, 'fix.patch'),
    '--dry-run',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ {2}changed {10}'greet' lib\.js:1$/m);
  assert.match(r.out, /a patch can be made \(dry run: nothing written\)/);
  assert.equal(existsSync(join(p.dir, 'lp-fix.mjs')), false);
});

test("build: --build runs the project's build in copies of both trees and compares what it emits", async (t) => {
  const build =
    "const fs = require('fs'); fs.mkdirSync('dist', { recursive: true }); fs.writeFileSync('dist/lib.js', fs.readFileSync('src/lib.txt', 'utf8'));";
  const mk = (body: string) => ({
    'package.json': JSON.stringify({ name: 'built', version: '1.0.0' }),
    'build.cjs': build,
    'src/lib.txt': `function f() {\n  return ${body};\n}\nmodule.exports = { f };\n`,
  });
  const oldP = tmpProject(mk('1'));
  const newP = tmpProject(mk('2'));
  t.after(oldP.cleanup);
  t.after(newP.cleanup);
  const out = join(newP.dir, 'out.mjs');
  const r = await run([
    '--old',
    oldP.dir,
    '--new',
    newP.dir,
    '--build',
    'node build.cjs',
    '-o',
    out,
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as { ok: boolean; modules: { id: string; funcs: { name: string }[] }[] };
  assert.equal(json.ok, true);
  assert.deepEqual(
    json.modules.map((m) => [m.id, m.funcs.map((f) => f.name)]),
    [['built/dist/lib.js', ['f']]],
  );
  // The user's trees were not built in place.
  assert.equal(existsSync(join(oldP.dir, 'dist')), false);
  assert.match(readFileSync(out, 'utf8'), /module: "built\/dist\/lib\.js"/);
});

test('build: exit codes — 2 bad usage, 1 refused or nothing to patch, 0 written', async (t) => {
  assert.equal((await run([])).code, 2);
  assert.equal((await run(['--bogus'])).code, 2);
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: livepatch build /);
  assert.equal((await run(['--from', 'minimist@1.2.5'])).code, 2);
  const refused = await run([
    '--old',
    fixture('build/cases/private/old'),
    '--new',
    fixture('build/cases/private/new'),
  ]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.out,
    /^refused: lib\.js:3: patched 'Cart\.prototype\.total' uses private member '#n'; /m,
  );
  const same = await run([
    '--old',
    fixture('build/cases/whitespace/old'),
    '--new',
    fixture('build/cases/whitespace/new'),
  ]);
  assert.equal(same.code, 1);
  assert.match(same.out, /no functional changes found/);
  const p = tmpProject({});
  t.after(p.cleanup);
  const out = join(p.dir, 'p.mjs');
  const ok = await run([
    '--old',
    fixture('build/cases/changed/old'),
    '--new',
    fixture('build/cases/changed/new'),
    '-o',
    out,
  ]);
  assert.equal(ok.code, 0, ok.err);
  assert.ok(existsSync(out));
});

test('build: --sign writes a detached signature that the trust store verifies; the manifest records the fix', async (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const keys = generateKeys();
  writeFileSync(join(p.dir, 'k.key'), keys.privatePem);
  writeFileSync(join(p.dir, 'k.pub'), keys.publicPem);
  const out = join(p.dir, 'fix.mjs');
  const r = await run([
    '--old',
    fixture('build/cases/changed/old'),
    '--new',
    fixture('build/cases/changed/new'),
    '--name',
    'greet-fix',
    '--fixes',
    'CVE-2099-1,BUG-7',
    '--description',
    'friendlier greeting',
    '--sign',
    join(p.dir, 'k.key'),
    '-o',
    out,
  ]);
  assert.equal(r.code, 0, r.err);
  const source = readFileSync(out);
  assert.equal(
    verifySource(source, readFileSync(`${out}.sig`, 'utf8'), loadTrustedKeys(join(p.dir, 'k.pub'))),
    keys.id,
  );
  // The manifest is plain JSON in the module text (importing the patch needs the loader to resolve 'livepatch').
  const text = source.toString();
  const start = text.indexOf('export const manifest = ') + 'export const manifest = '.length;
  const mod = {
    manifest: JSON.parse(text.slice(start, text.indexOf(';\n', start))) as Record<string, unknown>,
  };
  assert.equal(mod.manifest.name, 'greet-fix');
  assert.deepEqual(mod.manifest.fixes, ['CVE-2099-1', 'BUG-7']);
  assert.deepEqual(fixesOf(source), ['CVE-2099-1', 'BUG-7'], 'the control server sees the fix ids too');
  assert.equal(mod.manifest.description, 'friendlier greeting');
  assert.deepEqual(mod.manifest.functions, [
    { module: 'app/lib.js', name: 'greet', sympos: 1, change: 'changed' },
  ]);
  assert.match(String((mod.manifest.source as { diff: string }).diff), /^- {2}return 'hello ' \+ name;$/m);
});

test('build: --build with a TypeScript build step compares the JavaScript it emits, not the TypeScript', async (t) => {
  // esbuild (the native binary tsx depends on) is a real TypeScript build, and fast enough for every run.
  const esbuild = join(repoRoot, 'node_modules/esbuild/bin/esbuild');
  const mk = (factor: string) => ({
    'package.json': JSON.stringify({ name: 'shop-ts', version: '1.0.0', type: 'module' }),
    'src/price.ts': `// Prices.\nexport function price(n: number): number {\n  return n * ${factor};\n}\nexport const label = (n: number): string => '$' + price(n);\n`,
  });
  const oldP = tmpProject(mk('2'));
  const newP = tmpProject(mk('3'));
  t.after(oldP.cleanup);
  t.after(newP.cleanup);
  const r = await run([
    '--old',
    oldP.dir,
    '--new',
    newP.dir,
    '--build',
    `"${esbuild}" src/price.ts --outdir=dist --format=esm --log-level=warning`,
    '--dry-run',
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as { modules: { id: string; funcs: { name: string; change: string }[] }[] };
  assert.deepEqual(
    json.modules.map((m) => [m.id, m.funcs.map((f) => `${f.change} ${f.name}`)]),
    [['shop-ts/dist/price.js', ['changed price']]],
  );
});

test('build: --exclude skips files and says so; a tree names the patch after its package and version', async (t) => {
  const files = (n: number) => ({
    'package.json': JSON.stringify({ name: 'gen-app', version: `1.0.${n}` }),
    'lib/a.js': `function a() {\n  return ${n};\n}\nmodule.exports = { a };\n`,
    'lib/gen/b.js': `function b() {\n  return ${n};\n}\nmodule.exports = { b };\n`,
  });
  const oldP = tmpProject(files(0));
  const newP = tmpProject(files(1));
  t.after(oldP.cleanup);
  t.after(newP.cleanup);
  const r = await run(['--old', oldP.dir, '--new', newP.dir, '--exclude', 'lib/gen', '--dry-run', '--json']);
  assert.equal(r.code, 0, r.err);
  const json = JSON.parse(r.out) as { name: string; skipped: string[]; modules: { id: string }[] };
  assert.equal(json.name, 'lp-gen-app-1-0-1');
  assert.deepEqual(json.skipped, ['lib/gen']);
  assert.deepEqual(
    json.modules.map((m) => m.id),
    ['gen-app/lib/a.js'],
  );
});
