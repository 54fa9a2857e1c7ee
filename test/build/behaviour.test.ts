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
