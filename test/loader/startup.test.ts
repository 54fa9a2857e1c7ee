// Start-up cost: the instrumenter (and acorn) load only when a module misses the cache, and loading them late
// leaves no trace in the app: acorn is never instrumented, require.cache holds only the app's own modules.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { features } from '../../src/loader/features.js';
import { distRoot, tmpProject } from '../helpers.js';
import { REPORT, runApp } from './app.js';

// A CommonJS entry that requires an ES module (require(esm)) and a CommonJS one, then lists require.cache.
function project() {
  return tmpProject({
    'package.json': JSON.stringify({ name: 'lazy' }),
    'esm.mjs': `export function hello(n) { return 'hello ' + n; }\n`,
    'lib.cjs': `exports.twice = function twice(n) { return n * 2; };\n`,
    'main.cjs': `const { hello } = require('./esm.mjs');\nconst lib = require('./lib.cjs');\nconsole.log(hello(lib.twice(2)));\nconsole.log('CACHE ' + JSON.stringify(Object.keys(require.cache)));\n${REPORT}`,
  });
}

const loaded = (err: string) =>
  err.split('\n').filter((l) => /loader: instrumenter loaded in/.test(l)).length;
const cacheKeys = (out: string) => JSON.parse(/^CACHE (.*)$/m.exec(out)?.[1] ?? '[]') as string[];
const preloaded = (err: string) => /loader: instrumenter loaded at start in/.test(err);

for (const hooks of ['default', 'async'] as const) {
  test(`${hooks} hooks: a warm start never loads the instrumenter; a cold one leaves no trace of it`, async (t) => {
    const p = project();
    t.after(p.cleanup);
    const env = {
      NODE_DEBUG: 'livepatch',
      LIVEPATCH_INSTRUMENT: '*',
      ...(hooks === 'async' ? { LIVEPATCH_LOADER_HOOKS: 'async' } : {}),
    };
    const cold = await runApp(p.dir, ['main.cjs'], env);
    assert.equal(cold.code, 0, cold.err);
    assert.deepEqual(cold.warnings, []);
    assert.match(cold.out, /^hello 4$/m);
    assert.deepEqual(cold.lp?.modules.sort(), ['lazy/esm.mjs', 'lazy/lib.cjs', 'lazy/main.cjs']);
    // Where require(esm) is refused under module.register hooks (22+), both threads load it at start instead.
    const eager = hooks === 'async' && !features.requireEsmUnderAsyncHooks.on;
    assert.equal(preloaded(cold.err), eager, cold.err);
    assert.ok(eager || loaded(cold.err) >= 1, cold.err);
    // Under '*' acorn would be a dependency like any other, were it not livepatch's own.
    assert.ok(!/'acorn\//.test(cold.err), cold.err);
    assert.deepEqual(
      cacheKeys(cold.out).filter((k) => !k.startsWith(p.dir)),
      [],
      'require.cache holds only the app',
    );

    const warm = await runApp(p.dir, ['main.cjs'], env);
    assert.equal(warm.code, 0, warm.err);
    assert.equal(loaded(warm.err), 0, warm.err);
    assert.equal(preloaded(warm.err), eager, warm.err);
    assert.equal(warm.err.split('\n').filter((l) => /cache hit/.test(l)).length, 3, warm.err);
    assert.deepEqual(warm.lp?.modules.sort(), cold.lp?.modules.sort());
    assert.deepEqual(cacheKeys(warm.out), cacheKeys(cold.out));
  });
}

test('livepatch/register is one file: a warm start loads one file of livepatch in each thread', async (t) => {
  const p = project();
  t.after(p.cleanup);
  const env = { NODE_DEBUG: 'esm', LIVEPATCH_INSTRUMENT: '*' };
  assert.equal((await runApp(p.dir, ['main.cjs'], env)).code, 0, 'the cold start that fills the cache');
  // Node's own debug log of the ES module loader names every module it translates, in every thread.
  const run = await runApp(p.dir, ['main.cjs'], env);
  assert.equal(run.code, 0, run.err);
  assert.match(run.out, /^hello 4$/m);
  assert.deepEqual(run.lp?.modules.sort(), ['lazy/esm.mjs', 'lazy/lib.cjs', 'lazy/main.cjs']);
  const ours = new Set<string>();
  for (const m of run.err.matchAll(/file:\/\/[^\s'",)]+/g)) {
    if (m[0].startsWith(pathToFileURL(distRoot).href + '/')) ours.add(fileURLToPath(m[0]));
  }
  const expected = new Set([join(distRoot, 'src/loader/register.js')]);
  // Node 20's hooks thread loads the module it is given, hooks-async.js, bundled as well.
  if (!features.syncHooks.on) expected.add(join(distRoot, 'src/loader/hooks-async.js'));
  assert.deepEqual([...ours].sort(), [...expected].sort());
  for (const entry of ['register.js', 'hooks-async.js']) {
    assert.ok(!readFileSync(join(distRoot, 'src/loader', entry), 'utf8').includes("from './"), entry);
  }
});
