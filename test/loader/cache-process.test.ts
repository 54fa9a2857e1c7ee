// The on-disk cache seen from real processes: cold then warm start, a damaged entry, processes starting together.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { registerEntry, spawnNode, tmpProject } from '../helpers.js';
import { CACHE_FORMAT, openCache, SYMBOLS } from '../../src/loader/cache.js';
import { cleanEnv, REPORT, runApp } from './app.js';

function project() {
  return tmpProject({
    'package.json': JSON.stringify({ name: 'cached' }),
    'esm.mjs': `export const hello = (n) => 'hello ' + n;\n`,
    'lib.cjs': `exports.twice = function twice(n) { return n * 2; };\n`,
    'main.mjs': `import { hello } from './esm.mjs';\nimport lib from './lib.cjs';\nconsole.log(hello(lib.twice(2)));\n${REPORT}`,
    // main.mjs, with the cache emptied before the report reads the symbol tables.
    'gone.mjs': `import { rmSync } from 'node:fs';\nimport { hello } from './esm.mjs';\nimport lib from './lib.cjs';\nrmSync(new URL('./.lp-run/cache/v${CACHE_FORMAT}', import.meta.url), { recursive: true });\nconsole.log(hello(lib.twice(2)));\n${REPORT}`,
  });
}

const debug = { NODE_DEBUG: 'livepatch' };
const count = (err: string, re: RegExp) => err.split('\n').filter((l) => re.test(l)).length;

test('a second start takes every module from the cache; a damaged entry is rebuilt', async (t) => {
  const p = project();
  t.after(p.cleanup);
  const cold = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(cold.code, 0, cold.err);
  assert.match(cold.out, /^hello 4$/m);
  assert.equal(count(cold.err, /loader: '.*': instrumented in/), 3, cold.err);
  assert.equal(count(cold.err, /cache hit/), 0);
  const dir = join(p.dir, `.lp-run/cache/v${CACHE_FORMAT}`);
  const entries = readdirSync(dir);
  assert.equal(entries.length, 3);
  // Without --enable-source-maps, plain JavaScript carries no inline source map.
  for (const e of entries) assert.ok(!readFileSync(join(dir, e), 'utf8').includes('sourceMappingURL'), e);
  // Code that names its symbol table by key has the table in its entry, after the code, not in it (abi.md §3).
  const cache = openCache(join(p.dir, '.lp-run/cache'), false)!;
  let keyed = 0;
  for (const e of entries) {
    const code = cache.get(e) ?? '';
    if (!code.includes('symbolsKey:')) continue;
    keyed++;
    assert.ok(!code.includes('"funcs"'), `the table is in the code of '${e}'`);
    assert.ok(Array.isArray(JSON.parse(cache.get(`${e}${SYMBOLS}`) ?? '{}').funcs), `no table with '${e}'`);
  }
  assert.ok(keyed >= 1, 'the CommonJS module names its table by key');
  assert.ok(cold.lp?.funcs['cached/lib.cjs']?.includes('exports.twice'), JSON.stringify(cold.lp?.funcs));
  assert.ok(cold.lp?.funcs['cached/esm.mjs']?.includes('hello'), JSON.stringify(cold.lp?.funcs));

  const warm = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(warm.code, 0, warm.err);
  assert.equal(count(warm.err, /loader: '.*': cache hit/), 3, warm.err);
  assert.equal(count(warm.err, /instrumented in/), 0);
  assert.deepEqual(warm.lp?.modules, cold.lp?.modules);
  assert.deepEqual(warm.lp?.funcs, cold.lp?.funcs, 'the warm start read every symbol table from the cache');

  // Damage in the code: the entry is refused, the module instrumented again and the entry written anew.
  const first = join(dir, entries[0] ?? '');
  writeFileSync(first, readFileSync(first, 'utf8').replace('\n', '\nthrow new Error("planted");'));
  const after = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(after.code, 0, after.err);
  assert.match(after.err, /cache entry '.*' is damaged; ignoring it/);
  assert.equal(count(after.err, /cache hit/), 2);
  assert.equal(count(after.err, /instrumented in/), 1);
  assert.deepEqual(after.lp?.modules, cold.lp?.modules);
  assert.deepEqual(after.lp?.funcs, cold.lp?.funcs);
  assert.deepEqual(readdirSync(dir).sort(), [...entries].sort());
  // Damage after the code, in the table: the code is still good and runs; the table is refused when it is read
  // (the report asks for every table) and made again from the file, and the entry goes.
  const withTable = entries.find((e) => cache.get(`${e}${SYMBOLS}`) !== undefined) ?? '';
  appendFileSync(join(dir, withTable), '\nthrow new Error("planted");\n');
  const tableHit = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(tableHit.code, 0, tableHit.err);
  assert.equal(count(tableHit.err, /cache hit/), 3, tableHit.err);
  assert.match(tableHit.err, new RegExp(`cache entry '${withTable}' is damaged; ignoring it`));
  assert.deepEqual(tableHit.lp?.funcs, cold.lp?.funcs, 'the damaged table made again from the file');
  assert.ok(!readdirSync(dir).includes(withTable));

  // A table is read when asked for. One whose entry is gone (a tmp cleaner or someone emptying the cache under a
  // service that has run for weeks) is made again from the file, which is still the one that was loaded...
  const gone = await runApp(p.dir, ['gone.mjs'], debug);
  assert.equal(gone.code, 0, gone.err);
  assert.match(gone.out, /^hello 4$/m);
  for (const m of ['cached/lib.cjs', 'cached/esm.mjs'])
    assert.deepEqual(gone.lp?.funcs[m], cold.lp?.funcs[m], `the table of '${m}' made again from its file`);
  // ...and when the file has changed since, the module is listed as not patchable: a table of other code would
  // name the wrong functions.
  writeFileSync(
    join(p.dir, 'gone.mjs'),
    readFileSync(join(p.dir, 'gone.mjs'), 'utf8')
      .replace(
        'console.log(hello',
        "writeFileSync(new URL('./lib.cjs', import.meta.url), 'exports.twice = (n) => n + n;\\n');\nconsole.log(hello",
      )
      .replace("import { rmSync } from 'node:fs';", "import { rmSync, writeFileSync } from 'node:fs';"),
  );
  const changed = await runApp(p.dir, ['gone.mjs'], debug);
  assert.equal(changed.code, 0, changed.err);
  assert.match(changed.out, /^hello 4$/m);
  assert.deepEqual(changed.lp?.funcs['cached/lib.cjs'], [], JSON.stringify(changed.lp?.funcs));
  assert.deepEqual(changed.lp?.funcs['cached/esm.mjs'], cold.lp?.funcs['cached/esm.mjs']);
});

test('the content hash is of the bytes on disk, cold and warm: UTF-8, a BOM, invalid bytes', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'bytes' }),
    'main.mjs': `import { createRequire } from 'node:module';\nconst require = createRequire(import.meta.url);\nconsole.log(['plain', 'bom', 'bad'].map((f) => require('./' + f + '.cjs').name()).join(' '));\n${REPORT}`,
  });
  t.after(p.cleanup);
  const files: Record<string, Buffer> = {
    // The usual module: its bytes are exactly the UTF-8 of its code, so a warm start reads no file but the entry.
    'plain.cjs': Buffer.from("exports.name = function name() { return 'plain é'; };\n"),
    // Two byte sequences decoding to what V8 runs: the hash must still be the one on disk.
    'bom.cjs': Buffer.from("\uFEFFexports.name = function name() { return 'bom'; };\n"),
    'bad.cjs': Buffer.concat([
      Buffer.from('// invalid UTF-8: '),
      Buffer.from([0xff, 0xc3]),
      Buffer.from("\nexports.name = function name() { return 'bad'; };\n"),
    ]),
  };
  for (const [f, bytes] of Object.entries(files)) writeFileSync(join(p.dir, f), bytes);
  const expected = Object.fromEntries(
    Object.entries(files).map(([f, b]) => [`bytes/${f}`, createHash('sha256').update(b).digest('hex')]),
  );
  for (const start of ['cold', 'warm']) {
    const r = await runApp(p.dir, ['main.mjs'], debug);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^plain é bom bad$/m);
    for (const [id, hash] of Object.entries(expected))
      assert.equal(r.lp?.hashes[id], hash, `${start}: ${id}`);
    if (start === 'warm') assert.equal(count(r.err, /cache hit/), 4, r.err);
  }
  // A file that held U+FFFD written out, replaced by one with an invalid byte there: both decode to the same code,
  // and the entry of the first must not stand for the second (a warm hit would report the first one's hash).
  const swap = (bytes: Buffer) => {
    writeFileSync(join(p.dir, 'bad.cjs'), bytes);
    return createHash('sha256').update(bytes).digest('hex');
  };
  const code = "exports.name = function name() { return 'bad'; };\n";
  const written = swap(Buffer.from(`// \uFFFD\n${code}`));
  assert.equal((await runApp(p.dir, ['main.mjs'])).lp?.hashes['bytes/bad.cjs'], written);
  const invalid = swap(Buffer.concat([Buffer.from('// '), Buffer.from([0xff]), Buffer.from(`\n${code}`)]));
  const r = await runApp(p.dir, ['main.mjs']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.lp?.hashes['bytes/bad.cjs'], invalid);
});

test('LIVEPATCH_CACHE_DIR=off instruments without writing a cache', async (t) => {
  const p = project();
  t.after(p.cleanup);
  const r = await runApp(p.dir, ['main.mjs'], { ...debug, LIVEPATCH_CACHE_DIR: 'off' });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.lp?.modules.length, 3);
  assert.match(r.err, /cache 'off'/);
  assert.ok(!existsSync(join(p.dir, '.lp-run/cache')));
});

test('an unusable cache directory is one warning; modules are still instrumented', async (t) => {
  const p = project();
  t.after(p.cleanup);
  writeFileSync(join(p.dir, 'not-a-dir'), '');
  const r = await runApp(p.dir, ['main.mjs'], { LIVEPATCH_CACHE_DIR: join(p.dir, 'not-a-dir') });
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(r.warnings, [
    `livepatch: cannot use cache directory '${join(p.dir, 'not-a-dir')}' (ENOTDIR); instrumenting without a cache`,
  ]);
  assert.equal(r.lp?.modules.length, 3);
});

test('processes starting together on an empty cache all run instrumented and leave whole entries', async (t) => {
  const p = project();
  t.after(p.cleanup);
  const runs = await Promise.all([1, 2, 3, 4].map(() => runApp(p.dir, ['main.mjs'])));
  for (const r of runs) {
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.lp?.modules.length, 3);
  }
  const dir = join(p.dir, `.lp-run/cache/v${CACHE_FORMAT}`);
  assert.equal(readdirSync(dir).length, 3, `no temporary files: ${readdirSync(dir).join(', ')}`);
  const warm = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(count(warm.err, /cache hit/), 3, warm.err);
});

// Node's compile cache (module.enableCompileCache, 22.1+) in the cache directory, once something is instrumented.
const hasCompileCache = typeof (Module as { enableCompileCache?: unknown }).enableCompileCache === 'function';

test("the compile cache is on beside livepatch's cache, off with LIVEPATCH_COMPILE_CACHE=off", async (t) => {
  if (!hasCompileCache) return t.skip(`Node ${process.version} has no module.enableCompileCache`);
  const p = project();
  t.after(p.cleanup);
  const on = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(on.code, 0, on.err);
  assert.deepEqual(on.warnings, []);
  assert.match(on.err, /compile cache on: '/);
  assert.ok(readdirSync(join(p.dir, '.lp-run/cache/compile')).length > 0);
  const again = await runApp(p.dir, ['main.mjs'], debug);
  assert.equal(again.code, 0, again.err);
  assert.deepEqual(again.lp, on.lp);

  const q = project();
  t.after(q.cleanup);
  const off = await runApp(q.dir, ['main.mjs'], { ...debug, LIVEPATCH_COMPILE_CACHE: 'off' });
  assert.equal(off.code, 0, off.err);
  assert.doesNotMatch(off.err, /compile cache/);
  assert.ok(!existsSync(join(q.dir, '.lp-run/cache/compile')));
  // A directory Node cannot use is Node's business: it says so, and the app runs.
  writeFileSync(join(q.dir, '.lp-run/cache/compile'), '');
  const bad = await runApp(q.dir, ['main.mjs'], debug);
  assert.equal(bad.code, 0, bad.err);
  assert.deepEqual(bad.warnings, []);
  assert.match(bad.err, /compile cache failed: /);
  assert.deepEqual(bad.lp, off.lp);
});

test('a service stopped by SIGTERM still leaves its compile cache: it is written once start-up settles', async (t) => {
  if (!hasCompileCache) return t.skip(`Node ${process.version} has no module.enableCompileCache`);
  const files = (dir: string): number =>
    existsSync(dir)
      ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length
      : 0;
  // Node writes the compile cache only on a clean exit; a service never exits cleanly.
  const serve = async (flushMs: string, settle: (compileDir: string) => Promise<void>) => {
    const p = project();
    t.after(p.cleanup);
    writeFileSync(
      join(p.dir, 'serve.mjs'),
      `import { hello } from './esm.mjs';\nimport lib from './lib.cjs';\nconsole.log(hello(lib.twice(2)));\nsetInterval(() => {}, 1000);\nconsole.log('ready');\n`,
    );
    const child = spawnNode(['--import', registerEntry, 'serve.mjs'], {
      cwd: p.dir,
      env: cleanEnv(p.dir, { LIVEPATCH_COMPILE_CACHE_FLUSH_MS: flushMs }),
    });
    t.after(() => child.kill());
    await child.waitFor(/^ready$/m);
    const compileDir = join(p.dir, '.lp-run/cache/compile');
    await settle(compileDir);
    child.proc.kill('SIGTERM');
    assert.equal(await child.exited, 'SIGTERM');
    return files(compileDir);
  };
  const poll = async (dir: string) => {
    for (let i = 0; i < 100 && files(dir) === 0; i++) await new Promise((r) => setTimeout(r, 50));
  };
  assert.ok((await serve('200', poll)) > 0, 'written while the service runs');
  const never = await serve('600000', () => new Promise((r) => setTimeout(r, 1000)));
  assert.equal(never, 0, 'without the flush, SIGTERM leaves no compile cache');
});
