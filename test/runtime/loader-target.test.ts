// End to end with the real loader: a temporary app (ESM importing CommonJS) run with
// `node --import livepatch/register`, instrumented by src/loader + src/instrument, patched by the runtime
// while requests are in flight. The app loads patches itself from stdin (the control socket is tested elsewhere).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { distRoot, registerEntry, spawnNode, tmpProject } from '../helpers.js';

const CART = `import { setTimeout as sleep } from 'node:timers/promises';
import prices from './prices.cjs';
export function label() { return 'v1'; }
export async function total(ids, slowMs) {
  let sum = 0;
  for (const id of ids) { sum += prices.price(id); await sleep(slowMs); }
  return { sum, label: label() };
}
`;
const PRICES = `'use strict';
exports.price = function price(id) { return 100; };
`;
const SERVER = `import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { total } from './src/cart.js';
const dist = process.env.LP_DIST;
const { getRuntime } = await import(pathToFileURL(dist + '/src/runtime/index.js').href);
const rt = getRuntime();
rt.log.subscribe((l) => console.log(l.line));
const server = createServer(async (req, res) => {
  const slow = Number(new URL(req.url, 'http://x').searchParams.get('slow') ?? 0);
  res.end(JSON.stringify(await total([1, 2, 3], slow)));
});
server.listen(0, '127.0.0.1', () => console.log('#listening ' + server.address().port));
createInterface({ input: process.stdin }).on('line', async (file) => {
  try {
    rt.loadPatch((await import(pathToFileURL(file).href)).default);
    console.log('#loaded');
  } catch (e) {
    console.log('#error ' + e.code + ' ' + e.message);
  }
});
process.stdin.on('end', () => process.exit(0));
`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const patch = (
  name: string,
  cartHash: string,
) => `import { defineLivepatch } from ${JSON.stringify(join(distRoot, 'src/index.js'))};
export default defineLivepatch({
  name: ${JSON.stringify(name)},
  objects: [
    { module: 'shop/src/prices.cjs', hash: ${JSON.stringify(sha(PRICES))}, funcs: [{ name: 'exports.price', replacement: () => 200 }] },
    { module: 'shop/src/cart.js', hash: ${JSON.stringify(cartHash)}, funcs: [{ name: 'label', replacement: () => 'v2' }] },
  ],
});
`;

test('a real app under the loader: in-flight requests finish on the old code, new ones run the new', async (t) => {
  const project = tmpProject({
    'package.json': JSON.stringify({ name: 'shop', type: 'module' }),
    'src/cart.js': CART,
    'src/prices.cjs': PRICES,
    'server.js': SERVER,
    'fix.mjs': patch('fix', sha(CART)),
    'wrong.mjs': patch('wrong', 'f'.repeat(64)),
  });
  t.after(project.cleanup);
  const child = spawnNode(['--import', registerEntry, join(project.dir, 'server.js')], {
    cwd: project.dir,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      LP_DIST: distRoot,
      XDG_RUNTIME_DIR: join(project.dir, 'run'),
      LIVEPATCH_INSTALL_DIR: join(project.dir, 'install'),
      LIVEPATCH_CACHE_DIR: join(project.dir, 'cache'),
    },
  });
  t.after(child.kill);
  const port = Number((await child.waitFor(/#listening (\d+)/))[1]);
  const get = (path: string) =>
    new Promise<{ sum: number; label: string }>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve(JSON.parse(body) as { sum: number; label: string }));
      })
        .on('error', reject)
        .end();
    });
  assert.deepEqual(await get('/?slow=0'), { sum: 300, label: 'v1' });

  child.proc.stdin!.write(`${join(project.dir, 'wrong.mjs')}\n`);
  const wrong = (await child.waitFor(/#error (.*)/))[1]!;
  assert.equal(
    wrong,
    `EHASH module 'shop/src/cart.js' does not match patch 'wrong': loaded hash ${sha(CART)}, patch built against ${'f'.repeat(64)}`,
  );

  const slow = get('/?slow=150');
  await new Promise((r) => setTimeout(r, 100));
  const mark = child.stdout().length;
  child.proc.stdin!.write(`${join(project.dir, 'fix.mjs')}\n`);
  await child.waitFor(/#loaded/);
  assert.deepEqual(await get('/?slow=0'), { sum: 600, label: 'v2' }, 'a new request runs all new code');
  assert.deepEqual(await slow, { sum: 300, label: 'v1' }, 'the old request ran all old code');
  await child.waitFor(/'fix': patching complete/);
  assert.deepEqual(
    child
      .stdout()
      .slice(mark)
      .split('\n')
      .filter((l) => l.startsWith('livepatch:')),
    [
      "livepatch: enabling patch 'fix'",
      "livepatch: 'fix': initializing patching transition",
      "livepatch: 'fix': starting patching transition",
      "livepatch: 'fix': completing patching transition",
      "livepatch: 'fix': patching complete",
    ],
  );
  child.proc.stdin!.end();
  assert.equal(await child.exited, 0);
});
