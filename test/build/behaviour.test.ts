// A built patch loaded into a real instrumented service: every kind of rewiring runs, state carries over, and
// disabling the patch brings the old behaviour back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildPatch } from '../../src/build/index.js';
import { cli, lpEnv } from '../control/harness.js';
import { fixture, registerEntry, spawnNode, tmpProject } from '../helpers.js';

test('build: a patch built from a source change runs in the running service, and disable undoes it', async (t) => {
  const work = tmpProject({});
  t.after(work.cleanup);
  const output = join(work.dir, 'shop-fix.mjs');
  const r = await buildPatch({
    old: fixture('build/behaviour/old'),
    new: fixture('build/behaviour/new'),
    name: 'shop-fix',
    fixes: ['SHOP-1'],
    output,
  });
  assert.deepEqual(r.refusals, []);
  assert.equal(r.output, output);

  // A private control directory, as the CLI tests use: nothing else on the host sees this service.
  const lp = lpEnv(t);
  const app = spawnNode(['--import', registerEntry, fixture('build/behaviour/old/server.js')], {
    env: lp.env,
  });
  t.after(app.kill);
  const port = (await app.waitFor(/listening (\d+)/))[1];
  const run = async () =>
    (await (await fetch(`http://127.0.0.1:${port}/run`)).json()) as Record<string, unknown>;
  const pid = String(app.proc.pid);

  const old = {
    greet: 'hello ann',
    valid: false,
    item: 'item box',
    shout: 'BOX',
    label: 'L7',
    double: 4,
    range: [0, 1, 2],
    split: ['a', 'b; c'],
    square: 'square:shape',
    size: 9,
    made: [true, 'sq', 'undefined', 4],
  };
  assert.deepEqual(await run(), { ...old, count: 'c1', hits: 1, calls: 1 });

  const load = await cli(lp, ['load', output, '--pid', pid]);
  assert.equal(load.code, 0, load.stdout + load.stderr);
  assert.deepEqual(await run(), {
    greet: 'hello, ann!', // new helper and new constant, from the patch
    valid: true, // the changed regular expression moved into the patch
    count: 'c#11', // the closure made before the patch runs new code over its own captured state
    hits: 101, // module state written through ctx.bindings...
    calls: 101, // ...is the module's own: unpatched code sees it
    item: 'item <box>', // object-literal method, with `this`
    shout: 'BOX!', // a nested arrow alone, with its lexical `this`
    label: 'label:7', // a module-level arrow
    double: 6, // async
    range: [0, 10, 20], // generator
    split: ['1:a', '2:b', '3:c'], // a 'var' nothing assigns, moved; a function renamed as it changed, and its callback
    square: 'SQUARE/shape/2', // method using super, with the class's home object
    size: 9.5, // getter
    made: [true, 'sq', 'v2', 4], // constructor of a derived class: same prototype, fields kept
  });

  const disable = await cli(lp, ['disable', 'shop-fix', '--pid', pid]);
  assert.equal(disable.code, 0, disable.stdout + disable.stderr);
  assert.deepEqual(await run(), { ...old, count: 'c12', hits: 102, calls: 102 });
});

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/** Node runs .ts files itself (type stripping on by default): 22.18+, 23.6+. */
const stripsTypes = major > 22 || (major === 22 && minor >= 18);

test(
  "build: TypeScript that Node runs itself — a patch built from two .ts trees fixes the running 'node server.ts'",
  { skip: !stripsTypes },
  async (t) => {
    const price = (body: string) =>
      `export interface Line { qty: number; unit: number }\n\nexport function price(line: Line): number {\n${body}\n}\n`;
    const tree = (body: string) => ({
      'package.json': JSON.stringify({ name: 'shop-ts', version: '1.0.0', type: 'module' }),
      'server.ts': `import { createServer } from 'node:http';\nimport { price } from './lib/price.ts';\nimport { Tier } from './lib/tier.ts';\nconst server = createServer((req, res) => {\n  const q = new URL(req.url ?? '/', 'http://x').searchParams;\n  res.end(String(price({ qty: Number(q.get('qty')), unit: Tier.unit })));\n});\nserver.listen(0, '127.0.0.1', () => console.log('listening', (server.address() as { port: number }).port));\n`,
      'lib/price.ts': price(body),
      // Unchanged: identical bytes, not compared. The declaration file is never a module.
      'lib/tier.ts': `export const Tier = { unit: 5 } as const;\n`,
      'lib/price.d.ts': `export declare function price(line: { qty: number; unit: number }): number;\n`,
    });
    const oldP = tmpProject(tree(`  return line.qty * line.unit;`));
    const newP = tmpProject(
      tree(`  // SHOP-2: a negative quantity must not refund.\n  return Math.max(0, line.qty) * line.unit;`),
    );
    t.after(oldP.cleanup);
    t.after(newP.cleanup);
    const output = join(oldP.dir, 'ts-fix.mjs');
    const r = await buildPatch({ old: oldP.dir, new: newP.dir, name: 'ts-fix', output });
    assert.deepEqual(r.refusals, []);
    assert.deepEqual(
      r.modules.map((m) => [m.id, m.funcs.map((f) => `${f.change} ${f.name}`)]),
      [['shop-ts/lib/price.ts', ['changed price']]],
    );

    const lp = lpEnv(t);
    const app = spawnNode(['--import', registerEntry, 'server.ts'], { cwd: oldP.dir, env: lp.env });
    t.after(app.kill);
    const port = (await app.waitFor(/listening (\d+)/))[1];
    const get = async () => (await fetch(`http://127.0.0.1:${port}/?qty=-2`)).text();
    assert.equal(await get(), '-10');
    const pid = String(app.proc.pid);
    const load = await cli(lp, ['load', output, '--pid', pid]);
    assert.equal(load.code, 0, load.stdout + load.stderr);
    assert.equal(await get(), '0');
    assert.equal((await cli(lp, ['disable', 'ts-fix', '--pid', pid])).code, 0);
    assert.equal(await get(), '-10');
  },
);
