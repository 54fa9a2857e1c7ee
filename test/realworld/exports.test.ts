// Real code, unmodified, all of it: the entry point of every package installed for this repository (~260, with
// their dependencies ~1,000 modules), imported from an ES module with every one of them instrumented, loads and
// exports the same names as without livepatch. Node finds a CommonJS module's named exports by scanning the code
// as loaded, which here is the instrumented code; and a module may declare names the header must not depend on
// (`var Symbol = root.Symbol` in lodash's standalone packages threw under the loader until slot ABI 3).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { lpEnv } from '../control/harness.js';
import { fixture, registerEntry, repoRoot, spawnNode, tmpProject } from '../helpers.js';

test('every installed package loads instrumented from ESM and exports the same names as without livepatch', async (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const script = fixture('realworld/exports.mjs');
  const modules = join(repoRoot, 'node_modules');
  const run = async (name: string, args: string[], env: NodeJS.ProcessEnv) => {
    const out = join(p.dir, `${name}.json`);
    const child = spawnNode([...args, script, modules, out], { cwd: p.dir, env });
    assert.equal(await child.exited, 0, child.stderr());
    return { seen: JSON.parse(readFileSync(out, 'utf8')) as Record<string, string>, stderr: child.stderr() };
  };
  const { env } = lpEnv(t);
  const plain = await run('plain', [], env);
  const inst = await run('instrumented', ['--import', registerEntry], {
    ...env,
    LIVEPATCH_CACHE_DIR: join(p.dir, 'cache'),
    LIVEPATCH_INSTRUMENT: '*',
  });
  const names = Object.keys(plain.seen);
  assert.ok(names.length >= 200, `only ${names.length} packages found`);
  const loaded = names.filter((n) => !plain.seen[n]!.startsWith('error '));
  assert.ok(loaded.length >= 200, `only ${loaded.length} packages load without livepatch`);
  const differ = names.filter((n) => inst.seen[n] !== plain.seen[n]);
  assert.deepEqual(
    differ.map((n) => `${n}: ${plain.seen[n]} → ${inst.seen[n]}`),
    [],
    'exports differ under the loader',
  );
  // Nothing was turned down on the way: a module that fails to instrument loads as it is, with a warning.
  assert.doesNotMatch(inst.stderr, /failed to instrument/);
  t.diagnostic(`${names.length} packages, ${loaded.length} load; identical exports instrumented`);
});
