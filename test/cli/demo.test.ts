// The README's main command: `npm run demo` must pass on every supported Node.js version, with zero failed requests.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { distRoot, spawnNode } from '../helpers.js';

test('the demo fixes, reverts and removes a live bug under load with zero failed requests', async (t) => {
  const env = { ...process.env };
  delete env['NODE_OPTIONS'];
  const demo = spawnNode([join(distRoot, 'examples/demo.js')], { env });
  t.after(() => demo.kill());
  const timer = setTimeout(() => demo.kill(), 30_000);
  const code = await demo.exited;
  clearTimeout(timer);
  const out = demo.stdout();
  assert.equal(code, 0, out + demo.stderr());
  assert.match(out, /GET \/quote\?item=book&qty=-3 {2}→ {2}200 .*"total":"-37\.50"/);
  assert.match(out, /GET \/quote\?item=book&qty=-3 {2}→ {2}400 .*quantity must be/);
  assert.match(out, /requests served under load: [1-9]\d*, failed: 0/);
  assert.match(out, /demo passed/);
});
