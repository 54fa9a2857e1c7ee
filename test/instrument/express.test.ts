// Real code, real process: express and all its dependencies instrumented, served over loopback HTTP, patched by
// symbol name (a dependency's `res.send` and the app's handler, which reads a module private through bindings).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { distRoot, fixture, spawnNode } from '../helpers.js';

it('instrument: an instrumented express app serves, then runs patched code through every reference', async (t) => {
  const child = spawnNode([fixture('instrument', 'express-app.cjs')], {
    env: { ...process.env, LP_INSTRUMENT: join(distRoot, 'src/instrument/index.js') },
  });
  t.after(child.kill);
  const code = await child.exited;
  assert.equal(code, 0, child.stderr());
  const out = child.stdout();
  assert.match(out, /instrumented \d{2,} files, \d{3,} functions/);
  assert.match(out, /^before: 200 hello, ann$/m);
  assert.match(out, /^send patched: 200 HELLO, ANN$/m);
  assert.match(out, /^handler patched: 200 HELLO, BO \(PATCHED\)$/m);
});
