// Worker threads: a patch loaded over the process's one control socket reaches every worker thread, a worker started
// later starts patched, a veto in one thread leaves no thread patched, and a worker whose event loop is busy is
// what the transition waits for. A real HTTP service with a real pool of worker_threads, driven by the real CLI.
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { test, type TestContext } from 'node:test';
import { fixture, registerEntry, spawnNode } from '../helpers.js';
import { cli, cliJson, get, lpEnv, until, type LpEnv } from './harness.js';

const fix = fixture('control/pool-patches/fix-pool-price.js');
const veto = fixture('control/pool-patches/veto-in-workers.js');

async function startPool(t: TestContext, lp: LpEnv) {
  const child = spawnNode(['--import', registerEntry, fixture('control/pool-app/server.js')], {
    env: lp.env,
  });
  t.after(() => child.kill());
  const m = await child.waitFor(/port (\d+)/);
  const port = Number(m[1]);
  const pool = async () =>
    JSON.parse((await get(port, '/pool')).body) as { thread: number; price: number; tag: string }[];
  const main = async () => Number((await get(port, '/main')).body);
  const prices = async () => (await pool()).map((w) => w.price);
  return { child, pid: String(child.proc.pid), port, pool, main, prices };
}

interface ThreadRow {
  thread: number;
  settled: boolean;
  patches: { name: string; enabled: boolean }[];
  errors: unknown[];
}

async function threads(lp: LpEnv, pid: string): Promise<ThreadRow[]> {
  return ((await cliJson(lp, ['list', '--pid', pid, '--json'])).threads ?? []) as ThreadRow[];
}

/** Waits until both pool workers are in step, then checks that every thread prices as `expected`. */
async function everyThreadPrices(lp: LpEnv, app: Awaited<ReturnType<typeof startPool>>, expected: number) {
  await until(
    'both workers in step',
    () => threads(lp, app.pid),
    (r) => r.length === 2 && r.every((x) => x.settled),
  );
  assert.equal(await app.main(), expected);
  assert.deepEqual(await app.prices(), [expected, expected]);
}

test('a patch reaches every worker thread, one started later starts patched, unload reverts them all', async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const before = await app.pool();
  assert.equal(before.length, 2);
  assert.deepEqual(
    before.map((w) => w.price),
    [21, 21],
  );
  assert.equal(await app.main(), 21);

  const load = await cli(lp, ['load', fix, '--pid', app.pid]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /patched 'fix-pool-price': transition complete/);
  assert.deepEqual(await app.prices(), [20, 20]);
  assert.equal(await app.main(), 20);

  const rows = await threads(lp, app.pid);
  assert.deepEqual(
    rows.map((r) => [r.thread, r.settled, r.patches]),
    before.map((w) => [w.thread, true, [{ name: 'fix-pool-price', enabled: true }]]),
  );
  assert.match(
    (await cli(lp, ['list', '--pid', app.pid])).stdout,
    new RegExp(`worker thread ${before[0]!.thread}: fix-pool-price; in step`),
  );

  // Started after the load: the patch is in place before the worker's first job.
  const late = JSON.parse((await get(app.port, '/spawn')).body) as { thread: number; price: number };
  assert.equal(late.price, 20);

  const unload = await cli(lp, ['unload', 'fix-pool-price', '--pid', app.pid]);
  assert.equal(unload.code, 0, unload.stderr);
  assert.deepEqual(await app.prices(), [21, 21, 21]);
  assert.equal(await app.main(), 21);
  const after = await threads(lp, app.pid);
  assert.deepEqual(
    after.map((r) => [r.thread, r.settled, r.patches]),
    [...before.map((w) => w.thread), late.thread].map((id) => [id, true, []]),
  );

  // `symbols` covers the process: a module only the workers load is listed with the threads that have it.
  const syms = await cliJson(lp, ['symbols', '--pid', app.pid, '--json']);
  const ids = (await threads(lp, app.pid)).map((r) => r.thread);
  const workerMod = syms.modules.find((m: { id: string }) => m.id === 'fixture-pool/worker.js');
  assert.deepEqual(workerMod?.threads, ids);
  assert.ok(workerMod.funcs.some((f: { name: string }) => f.name === 'tag'));
  const shared = syms.modules.find((m: { id: string }) => m.id === 'fixture-pool/pricing.js');
  assert.deepEqual(shared?.threads, [0, ...ids]);
  assert.match(
    (await cli(lp, ['symbols', 'worker.js', '--pid', app.pid])).stdout,
    new RegExp(
      `fixture-pool/worker\\.js {2}sha256:[0-9a-f]{64} {2}\\(worker threads ${ids.join(', ')} only\\)\\n {2}tag`,
    ),
  );

  // A module only the workers load: the main thread keeps the patch for a module that has not come (yet).
  const tag = await cli(lp, ['load', fixture('control/pool-patches/fix-worker-tag.js'), '--pid', app.pid]);
  assert.equal(tag.code, 0, tag.stderr);
  assert.deepEqual(
    (await app.pool()).map((w) => [w.price, w.tag]),
    [
      [21, 'v2'],
      [21, 'v2'],
      [21, 'v2'],
    ],
  );
  assert.match(
    (await cli(lp, ['list', '--pid', app.pid])).stdout,
    /fix-worker-tag \[enabled\].*\n {4}fixture-pool\/worker\.js {2}\(not loaded yet: waiting for the module\)/,
  );
  // `info` says where: not loaded in the main thread, patched in each worker.
  const info = await cliJson(lp, ['info', 'fix-worker-tag', '--pid', app.pid, '--json']);
  assert.deepEqual(
    info.threads.map((w: { thread: number; present: boolean; enabled: boolean; objects: unknown }) => [
      w.thread,
      w.present,
      w.enabled,
      w.objects,
    ]),
    ids.map((id) => [id, true, true, [{ name: 'fixture-pool/worker.js', loaded: true, patched: true }]]),
  );
  const inAll = `threads ${ids.slice(0, -1).join(', ')} and ${ids.at(-1)}`;
  assert.match(
    (await cli(lp, ['info', 'fix-worker-tag', '--pid', app.pid])).stdout,
    new RegExp(
      `\n {2}worker threads: enabled in ${inAll}\n` +
        `(.*\n)* {2}object fixture-pool/worker\\.js \\(main thread: not loaded yet; patched in ${inAll}\\)`,
    ),
  );

  // A worker started without the loader cannot be patched, and `list` says so instead of leaving it out.
  const bare = JSON.parse((await get(app.port, '/bare')).body) as { thread: number; price: number };
  assert.equal(bare.price, 21);
  await until(
    'the bare worker listed',
    async () => (await cli(lp, ['list', '--pid', app.pid])).stdout,
    (out) => out.includes(`worker thread ${bare.thread}: not reporting: started without the loader`),
  );
  const bareRow = (await threads(lp, app.pid)).find((r) => r.thread === bare.thread);
  assert.equal((bareRow as { loader?: boolean } | undefined)?.loader, false);
  assert.match(
    (await cli(lp, ['status', '--pid', app.pid])).stdout,
    /\n {2}worker threads: 3 under the loader, all in step; 1 not reporting \(not patched: see 'list'\)/,
  );

  // A terminated worker leaves the list (its creator sees it go; the worker itself runs no exit handler).
  const stopped = Number((await get(app.port, '/stop')).body);
  assert.equal(stopped, late.thread);
  await until(
    'threads after /stop',
    async () => (await threads(lp, app.pid)).map((r) => r.thread),
    (ids) => !ids.includes(stopped) && ids.length === 3,
  );
  // No warning from the loader in any thread.
  assert.equal(app.child.stderr(), '');
});

test('a pre-patch callback that vetoes in the worker threads fails the load and leaves no thread patched', async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const ids = (await app.pool()).map((w) => w.thread);

  const load = await cli(lp, ['load', veto, '--pid', app.pid]);
  assert.equal(load.code, 1, load.stdout);
  assert.match(
    load.stderr,
    /patch 'veto-in-workers' failed in worker thread \d+: pre-patch callback failed .*: not in a worker; it was taken back out of every thread/,
  );
  assert.deepEqual((await cliJson(lp, ['list', '--pid', app.pid, '--json'])).patches, []);
  assert.match(
    (await cli(lp, ['log', '--pid', app.pid])).stdout,
    /livepatch: worker thread \d+: load of 'veto-in-workers' failed: pre-patch callback failed/,
  );
  assert.equal(await app.main(), 21);
  assert.deepEqual(await app.prices(), [21, 21]);
  const rows = await until(
    'threads in step after the veto',
    () => threads(lp, app.pid),
    (r) => r.length === 2 && r.every((x) => x.settled),
  );
  assert.deepEqual(
    rows.map((r) => [r.thread, r.patches, r.errors]),
    ids.map((id) => [id, [], []]),
  );

  // Nothing was left behind: the good patch loads afterwards into every thread.
  const good = await cli(lp, ['load', fix, '--pid', app.pid]);
  assert.equal(good.code, 0, good.stderr);
  assert.deepEqual(await app.prices(), [20, 20]);
});

test('an enable through sysfs that a worker refuses is undone in every thread, as the enable command', async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const veto = fixture('control/pool-patches/veto-second-enable.js');
  assert.equal((await cli(lp, ['load', veto, '--pid', app.pid])).code, 0);
  assert.deepEqual(await app.prices(), [20, 20]);
  const off = await cli(lp, ['sysfs', 'veto-second-enable/enabled', '0', '--pid', app.pid]);
  assert.equal(off.code, 0, off.stderr);
  await until('disabled everywhere', app.prices, (p) => p.join() === '21,21');

  const on = await cli(lp, ['sysfs', 'veto-second-enable/enabled', '1', '--pid', app.pid]);
  assert.equal(on.code, 1, on.stdout);
  assert.match(
    on.stderr,
    /failed in worker thread \d+: .*not twice in a worker; it was taken back out of every thread/,
  );
  assert.equal((await cliJson(lp, ['list', '--pid', app.pid, '--json'])).patches[0].enabled, false);
  await everyThreadPrices(lp, app, 21);
});

test('an atomic-replace patch vetoed in a worker leaves the patches it would have replaced, in every thread', async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  assert.equal((await cli(lp, ['load', fix, '--pid', app.pid])).code, 0);
  const load = await cli(lp, [
    'load',
    fixture('control/pool-patches/replace-veto-in-workers.js'),
    '--pid',
    app.pid,
  ]);
  assert.equal(load.code, 1, load.stdout);
  assert.match(
    load.stderr,
    /patch 'replace-veto' failed in worker thread \d+: .*not in a worker; it was taken back out/,
  );
  assert.deepEqual(
    (await cliJson(lp, ['list', '--pid', app.pid, '--json'])).patches.map(
      (p: { name: string; enabled: boolean }) => [p.name, p.enabled],
    ),
    [['fix-pool-price', true]],
  );
  await everyThreadPrices(lp, app, 20);
});

test("a worker's own worker is patched and listed, and leaves the list with it when it is terminated", async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const nest = JSON.parse((await get(app.port, '/nest')).body) as { thread: number; child: number };
  const load = await cli(lp, ['load', fix, '--pid', app.pid]);
  assert.equal(load.code, 0, load.stderr);
  const patched = [{ name: 'fix-pool-price', enabled: true }];
  await until(
    'the nesting worker and its own worker in step',
    () => threads(lp, app.pid),
    (r) =>
      [nest.thread, nest.child].every((id) =>
        r.some((x) => x.thread === id && x.settled && JSON.stringify(x.patches) === JSON.stringify(patched)),
      ),
  );
  // terminate() runs no exit handler in either thread; the nested one ends with its parent, unseen by anyone.
  assert.equal(Number((await get(app.port, '/unnest')).body), nest.thread);
  const left = await until(
    'both gone from the list',
    () => threads(lp, app.pid),
    (r) => !r.some((x) => x.thread === nest.thread || x.thread === nest.child),
  );
  assert.equal(left.length, 2, 'the pool stays');
  assert.equal(app.child.stderr(), '');
});

test('a worker thread whose event loop is busy holds the transition until it has applied the patch', async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const [busy, free] = (await app.pool()).map((w) => w.thread);
  assert.equal((await get(app.port, '/spin')).body, 'spinning');

  const load = await cli(lp, ['load', fix, '--pid', app.pid, '--timeout', '1']);
  assert.equal(load.code, 3, `${load.stdout}\n${load.stderr}`);
  assert.match(
    load.stderr,
    new RegExp(
      `thread-${busy} +worker .*thread ${busy}: has not applied the change yet \\(its event loop is busy\\?\\)`,
    ),
  );
  // `info` does not wait for it either: it names the thread that did not answer.
  assert.match(
    (await cli(lp, ['info', 'fix-pool-price', '--pid', app.pid])).stdout,
    new RegExp(
      `\\n {2}worker threads: enabled in thread ${free}; not answering \\(its event loop is busy\\?\\) in thread ${busy}\\n`,
    ),
  );
  const mid = await threads(lp, app.pid);
  assert.deepEqual(
    mid.map((r) => [r.thread, r.settled]),
    [
      [busy, false],
      [free, true],
    ],
  );
  assert.equal((await cliJson(lp, ['list', '--pid', app.pid, '--json'])).patches[0].transition, false);
  assert.equal((await cliJson(lp, ['list', '--pid', app.pid, '--json'])).patches[0].enabled, true);

  // When the worker is free again it applies the patch, and the transition is over.
  assert.equal((await get(app.port, '/unspin')).body, 'released');
  await until(
    'the busy worker in step',
    () => threads(lp, app.pid),
    (r) => r.every((x) => x.settled),
  );
  assert.doesNotMatch((await cli(lp, ['list', '--pid', app.pid])).stdout, /not caught up/);
  assert.deepEqual(await app.prices(), [20, 20]);
});

test("a worker's own HTTP requests are tasks of its own transition: a held one keeps the old code to its end", async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const wport = Number((await get(app.port, '/serve')).body);
  assert.equal((await get(wport, '/price')).body, '21');

  const slow = get(wport, '/slow');
  await app.child.waitFor(/worker held #1/);
  const load = await cli(lp, ['load', fix, '--pid', app.pid, '--timeout', '1']);
  assert.equal(load.code, 3, `${load.stdout}\n${load.stderr}`);
  assert.match(load.stderr, /thread \d+: 1 task\(s\) of the old universe: GET \/slow/);
  // New requests in that worker, and everything in the main thread, run the new code already.
  assert.equal((await get(wport, '/price')).body, '20');
  assert.equal(await app.main(), 20);

  assert.equal((await get(wport, '/release')).body, 'released');
  // The held request finishes in the universe it started in.
  assert.equal((await slow).body, 'slow 11');
  await until(
    'every thread in step',
    () => threads(lp, app.pid),
    (r) => r.length === 3 && r.every((x) => x.settled),
  );
  assert.equal((await get(wport, '/price')).body, '20');
});

test('load and unload cycles while requests keep the pool busy: no failed request, every answer old or new', async (t) => {
  const lp = lpEnv(t);
  const app = await startPool(t, lp);
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.after(() => agent.destroy());
  let running = true;
  const seen = new Map<string, number>();
  let failed = 0;
  const client = async () => {
    while (running) {
      try {
        const body = await new Promise<string>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port: app.port, path: '/pool', agent }, (res) => {
            let b = '';
            res.setEncoding('utf8').on('data', (d: string) => (b += d));
            res.on('end', () =>
              res.statusCode === 200 ? resolve(b) : reject(new Error(`${res.statusCode}`)),
            );
          });
          req.on('error', reject);
          req.end();
        });
        for (const w of JSON.parse(body) as { price: number }[])
          seen.set(String(w.price), (seen.get(String(w.price)) ?? 0) + 1);
      } catch {
        failed++;
      }
    }
  };
  const clients = Array.from({ length: 8 }, client);
  for (let i = 0; i < 6; i++) {
    const load = await cli(lp, ['load', fix, '--pid', app.pid]);
    assert.equal(load.code, 0, load.stderr);
    const unload = await cli(lp, ['unload', 'fix-pool-price', '--pid', app.pid]);
    assert.equal(unload.code, 0, unload.stderr);
  }
  assert.equal((await cli(lp, ['load', fix, '--pid', app.pid])).code, 0);
  running = false;
  await Promise.all(clients);
  assert.equal(failed, 0);
  // Only the two universes' answers, both of them many times: the patch went in and out under load.
  assert.deepEqual([...seen.keys()].sort(), ['20', '21']);
  assert.ok((seen.get('20') ?? 0) > 10 && (seen.get('21') ?? 0) > 10, JSON.stringify([...seen]));
  assert.deepEqual(await app.prices(), [20, 20]);
  const rows = await threads(lp, app.pid);
  assert.ok(rows.length === 2 && rows.every((r) => r.settled), JSON.stringify(rows));
});
