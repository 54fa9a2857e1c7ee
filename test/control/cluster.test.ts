// node:cluster services: a patch loaded into the primary reaches every worker, a worker forked later (one replaced
// after it died) starts with the primary's patches before it serves, a worker chosen alone is changed alone with a
// warning, and the workers never get ahead of a primary that refused a change. A real cluster sharing one HTTP port,
// driven by the real CLI.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test, type TestContext } from 'node:test';
import { fixture, registerEntry, spawnNode } from '../helpers.js';
import { cli, cliJson, lpEnv, until, type LpEnv } from './harness.js';

const fix = fixture('control/cluster-patches/fix-price.js');

/** One request on a new connection: the cluster hands each connection to the next worker. */
function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

interface PsRow {
  pid: number;
  clusterPrimary?: number;
  patches: string[];
}

async function startCluster(t: TestContext, lp: LpEnv) {
  const child = spawnNode(['--import', registerEntry, fixture('control/cluster-app/server.js')], {
    env: lp.env,
  });
  t.after(() => child.kill());
  const port = Number((await child.waitFor(/port (\d+)/))[1]);
  const primary = child.proc.pid as number;
  const workers = async () =>
    ((await cliJson(lp, ['ps', '--json'])).processes as PsRow[]).filter((p) => p.clusterPrimary === primary);
  // Both workers listening and reachable over their control sockets.
  await until('two workers', workers, (w) => w.length === 2);
  /** Each live worker's answer to /price, by pid: asks until every worker has answered. */
  const prices = async (): Promise<Map<number, number>> => {
    const want = new Set((await workers()).map((w) => w.pid));
    const seen = new Map<number, number>();
    for (let i = 0; i < 200 && [...want].some((p) => !seen.has(p)); i++) {
      const [value, pid] = (await get(port, '/price')).split(' ').map(Number);
      seen.set(pid!, value!);
    }
    for (const p of seen.keys()) if (!want.has(p)) seen.delete(p);
    assert.deepEqual([...seen.keys()].sort(), [...want].sort(), 'every worker answered');
    return seen;
  };
  /** Makes one worker exit and waits for the one the primary forks in its place; returns the new pid. */
  const replaceOne = async (): Promise<number> => {
    const before = new Set((await workers()).map((w) => w.pid));
    const gone = Number(await get(port, '/exit'));
    assert.ok(before.has(gone));
    // A worker never announced before: not one of the live ones, nor one replaced earlier.
    const known = [...child.stdout().matchAll(/worker (\d+) up/g)].map((x) => x[1]);
    const m = await child.waitFor(new RegExp(`worker (?!(?:${known.join('|')}) )(\\d+) up`));
    const pid = Number(m[1]);
    await until(
      'the new worker listed',
      workers,
      (w) => w.some((x) => x.pid === pid) && !w.some((x) => x.pid === gone),
    );
    return pid;
  };
  return { child, primary, port, workers, prices, replaceOne };
}

const all = (m: Map<number, number>) => [...new Set(m.values())];

test('a patch loaded into the cluster primary reaches every worker; a worker forked later starts with it', async (t) => {
  const lp = lpEnv(t);
  const app = await startCluster(t, lp);
  assert.deepEqual(all(await app.prices()), [21]);

  const load = await cli(lp, ['load', fix, '--pid', String(app.primary)]);
  assert.equal(load.code, 0, load.stderr);
  const [w1, w2] = (await app.workers()).map((w) => w.pid);
  for (const pid of [app.primary, w1, w2])
    assert.match(
      load.stdout,
      new RegExp(`pid ${pid} \\(server\\): patched 'fix-price': transition complete`),
    );
  assert.deepEqual(all(await app.prices()), [20]);

  // ps shows the workers under their primary.
  const ps = await cli(lp, ['ps']);
  assert.match(ps.stdout, new RegExp(`\\n${w1} +server \\(worker of ${app.primary}\\) .*fix-price\\n`));

  // A worker that dies is replaced; the new one has the patch before it answers its first request.
  const fresh = await app.replaceOne();
  const after = await app.prices();
  assert.equal(after.get(fresh), 20);
  assert.deepEqual(all(after), [20]);
  const status = await cli(lp, ['status', '--pid', String(fresh)]);
  assert.match(status.stdout, new RegExp(`pid ${fresh} \\(server, cluster worker of ${app.primary}\\)`));
  assert.match(status.stdout, /fix-price \[enabled\]/);
  assert.match(
    (await cli(lp, ['info', 'fix-price', '--pid', String(fresh)])).stdout,
    /taken from the cluster primary's patches at start/,
  );

  // Disabled through the name the whole cluster shares (no --all needed): every worker, and the next one too.
  const disable = await cli(lp, ['disable', 'fix-price', '--name', 'server']);
  assert.equal(disable.code, 0, disable.stderr);
  assert.deepEqual(all(await app.prices()), [21]);
  const later = await app.replaceOne();
  assert.equal((await app.prices()).get(later), 21);
  const tree = (await cliJson(lp, ['list', '--pid', String(later), '--json'])) as {
    patches: { name: string; enabled: boolean }[];
  };
  assert.deepEqual(
    tree.patches.map((p) => [p.name, p.enabled]),
    [['fix-price', false]],
  );

  // Unload: gone from all, and a worker forked afterwards has nothing.
  const unload = await cli(lp, ['unload', 'fix-price', '--pid', String(app.primary)]);
  assert.equal(unload.code, 0, unload.stderr);
  assert.equal(unload.stdout.match(/unloaded 'fix-price'/g)?.length, 3);
  const last = await app.replaceOne();
  assert.equal((await app.prices()).get(last), 21);
  assert.deepEqual(
    (await app.workers()).map((w) => w.patches),
    [[], []],
  );
  // The app's cluster.on('listening') saw each worker's HTTP server once, and no control socket.
  const ups = [...app.child.stdout().matchAll(/worker (\d+) up/g)].map((m) => m[1]);
  assert.equal(ups.length, 5);
  assert.equal(new Set(ups).size, 5);
  assert.equal(app.child.stderr(), '');
});

test('a worker chosen alone is changed alone, with a warning; the one forked in its place follows the primary', async (t) => {
  const lp = lpEnv(t);
  const app = await startCluster(t, lp);
  const [one, other] = (await app.workers()).map((w) => w.pid);
  const load = await cli(lp, ['load', fix, '--pid', String(one)]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(
    load.stderr,
    new RegExp(
      `warning: pid ${one} is a worker of cluster primary ${app.primary}: only this worker is changed`,
    ),
  );
  const p = await app.prices();
  assert.equal(p.get(one!), 20);
  assert.equal(p.get(other!), 21);
  // It crashes; the primary forks another.
  process.kill(one!, 'SIGKILL');
  await until(
    'the patched worker replaced',
    app.workers,
    (w) => w.length === 2 && !w.some((x) => x.pid === one),
  );
  assert.deepEqual(all(await app.prices()), [21]);

  // Installed afterwards: every process started since loads it, a worker too, beside the primary's patches.
  assert.equal((await cli(lp, ['install', fix])).code, 0);
  const fresh = await app.replaceOne();
  const p2 = await app.prices();
  assert.equal(p2.get(fresh), 20);
  assert.equal(p2.size, 2);
  assert.deepEqual([...p2.values()].sort(), [20, 21]);
  const primaryTree = (await cliJson(lp, ['list', '--pid', String(app.primary), '--json'])) as {
    processes: { pid: number; result: { patches: { name: string }[] } }[];
  };
  assert.deepEqual(primaryTree.processes.find((x) => x.pid === app.primary)!.result.patches, []);
});

test('a change the primary refuses reaches none of its workers; one they refuse is taken back out of the primary too', async (t) => {
  const lp = lpEnv(t);
  const app = await startCluster(t, lp);
  const workers = (await app.workers()).map((w) => w.pid);

  const vetoed = await cli(lp, [
    'load',
    fixture('control/cluster-patches/veto-in-primary.js'),
    '--pid',
    String(app.primary),
  ]);
  assert.equal(vetoed.code, 1);
  assert.match(vetoed.stderr, /pid \d+ \(server\): .*not in the primary/);
  for (const pid of workers)
    assert.match(
      vetoed.stderr,
      new RegExp(
        `pid ${pid} \\(server\\): not changed: its cluster primary ${app.primary} refused the change`,
      ),
    );
  assert.deepEqual(all(await app.prices()), [21]);
  assert.deepEqual(
    (await app.workers()).map((w) => w.patches),
    [[], []],
  );

  // Taken by the primary, refused by each worker: exit 1 naming them, and taken back out of the primary too, so that
  // a worker forked later does not start with a patch the workers refuse.
  const refused = await cli(lp, [
    'load',
    fixture('control/cluster-patches/veto-in-workers.js'),
    '--pid',
    String(app.primary),
  ]);
  assert.equal(refused.code, 1);
  for (const pid of workers)
    assert.match(refused.stderr, new RegExp(`pid ${pid} \\(server\\): .*not in a worker`));
  assert.match(
    refused.stderr,
    new RegExp(`a worker of cluster primary ${app.primary} refused 'veto-in-workers': taking it back out`),
  );
  assert.match(refused.stdout, new RegExp(`pid ${app.primary} \\(server\\): unloaded 'veto-in-workers'`));
  const tree = (await cliJson(lp, ['list', '--pid', String(app.primary), '--json'])) as {
    processes: { pid: number; result: { patches: unknown[] } }[];
  };
  assert.deepEqual(
    tree.processes.map((p) => p.result.patches),
    [[], [], []],
  );
  assert.deepEqual(all(await app.prices()), [21]);
  const fresh = await app.replaceOne();
  assert.equal((await app.prices()).get(fresh), 21);
  assert.equal(app.child.stderr(), '');
});
