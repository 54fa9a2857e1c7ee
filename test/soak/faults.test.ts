// Faults against real processes: a throwing replacement, a vetoing callback, SIGTERM, a killed CLI, a flooded
// socket, a busy CPU. After each the app must serve and `livepatch list` must show a coherent tree.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { connectApp, patchOf, startLoad, waitTransition, type AppKind } from '../../bench/soak/driver.js';
import { socketPath } from '../../src/control/paths.js';
import {
  assertCoherent,
  cli,
  http,
  listTree,
  patchFor,
  settledTree,
  spawnCli,
  started,
  type TreePatch,
} from './harness.js';

const kinds: AppKind[] = ['express', 'fastify'];

for (const kind of kinds) {
  test(`${kind}: a replacement that throws gets the app's error handling, and the process keeps serving`, async (t) => {
    const { soak, app } = await started(t, kind);
    const pid = ['--pid', String(app.pid)];
    const load = await cli(t, soak, ['load', patchFor(soak, 'throws.js', kind), ...pid]);
    assert.equal(load.code, 0, load.stderr);

    for (let i = 0; i < 3; i++) {
      const r = await http(app, '/items/7');
      assert.equal(r.status, 500);
      assert.deepEqual(JSON.parse(r.body), { error: 'internal error' });
    }
    assert.match(app.stderr(), /error: GET \/items\/7: replacement exploded/);
    // Routes that do not reach the replaced function are untouched.
    assert.equal((await http(app, '/health')).status, 200);
    const created = await http(app, '/items', {
      method: 'POST',
      body: JSON.stringify({ sku: 'x-1', name: 'x', price: 1 }),
    });
    assert.equal(created.status, 500, 'the create route serializes too');

    const tree = await listTree(t, soak, app.pid);
    assert.deepEqual(
      tree.map((p) => [p.name, p.enabled, p.transition]),
      [['soak-throws', true, false]],
    );
    const unload = await cli(t, soak, ['unload', 'soak-throws', ...pid]);
    assert.equal(unload.code, 0, unload.stderr);
    const r = await http(app, '/items/7');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).sku, 'sku-7');
    assert.deepEqual(await listTree(t, soak, app.pid), []);
  });

  test(`${kind}: a pre-patch callback that throws refuses the load and leaves the tree as it was`, async (t) => {
    const { soak, app } = await started(t, kind);
    const pid = ['--pid', String(app.pid)];
    assert.equal((await cli(t, soak, ['load', patchOf(kind), ...pid])).code, 0);
    const before = await listTree(t, soak, app.pid);

    const veto = await cli(t, soak, ['load', patchFor(soak, 'veto.js', kind), ...pid]);
    assert.equal(veto.code, 1, veto.stdout);
    assert.match(veto.stderr, /livepatch: error: .*schema version 3 is not migrated/);
    assert.deepEqual(await listTree(t, soak, app.pid), before);
    const log = await cli(t, soak, ['log', ...pid]);
    assert.match(log.stdout, new RegExp(`pre-patch callback failed for object 'soak-apps/${kind}-app.js'`));
    // The earlier patch still runs, and nothing of the refused one does.
    const r = await http(app, '/items/7');
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).api, 2);
    assert.equal(JSON.parse(r.body).vetoed, undefined);
    // Refused means not registered either: the process does not know the name.
    assert.equal((await cli(t, soak, ['info', 'soak-veto', ...pid])).code, 1);
  });
}

test('SIGTERM during a transition: the app shuts down by its own handler and nothing hangs', async (t) => {
  const { soak, app, client } = await started(t, 'express');
  const held = http(app, '/__soak/hold');
  await app.waitFor(/held #1/);
  const load = spawnCli(t, soak, ['load', patchOf('express'), '--pid', String(app.pid), '--timeout', '30']);
  // The held request keeps the transition open: wait until the process says so.
  for (;;) {
    const tr = (await client.request('transition')) as { patch: string } | null;
    if (tr?.patch === 'soak-express-hot') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const t0 = Date.now();
  app.proc.kill('SIGTERM');
  assert.equal(await app.exited, 0, app.stderr());
  assert.ok(Date.now() - t0 < 5000, `exit took ${Date.now() - t0} ms`);
  assert.match(app.stdout(), /shutting down\nshutdown clean/);
  // The held request started before the transition: it ends on the old code (no api mark), not cut off.
  const answer = await held;
  assert.equal(answer.status, 200);
  assert.equal(JSON.parse(answer.body).api, undefined);
  // The CLI that was following the transition ends at once: the drained request completed the transition
  // (exit 0), or the process went away first (exit 1) — never waiting out its 30 s timeout.
  const r = await load.done;
  if (r.code === 0) assert.match(r.stdout, /patched 'soak-express-hot': transition complete/);
  else {
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /connection to the process closed/);
  }
  assert.ok(Date.now() - t0 < 10_000);
  assert.equal(existsSync(socketPath(soak.controlDir, app.pid)), false, 'the socket file is removed');
});

test('the CLI killed in the middle of a load: the patch is loaded or not, and the next command works', async (t) => {
  const { soak, app, client } = await started(t, 'express');
  const pid = ['--pid', String(app.pid)];

  // Killed while following a transition that a held request keeps open.
  const held = http(app, '/__soak/hold');
  await app.waitFor(/held #1/);
  const load = spawnCli(t, soak, ['load', patchOf('express'), ...pid, '--timeout', '30']);
  for (let i = 0; !/waiting \(up to 30 s\)/.test(load.stdout()); i++) {
    assert.ok(i < 500, `the CLI never reached the transition: ${load.stdout()}${load.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  load.proc.kill('SIGKILL');
  await load.done;
  const during = await listTree(t, soak, app.pid);
  assert.deepEqual(
    during.map((p) => [p.name, p.enabled, p.transition]),
    [['soak-express-hot', true, true]],
  );
  await http(app, '/__soak/release', { method: 'POST' });
  assert.equal((await held).status, 200);
  const after = await settledTree(t, soak, app.pid);
  assert.deepEqual(
    after.map((p) => [p.name, p.enabled, p.transition]),
    [['soak-express-hot', true, false]],
  );
  assert.equal((await cli(t, soak, ['disable', 'soak-express-hot', ...pid])).code, 0);
  assert.equal((await cli(t, soak, ['unload', 'soak-express-hot', ...pid])).code, 0);

  // Killed at arbitrary points: before connecting, while sending, while the process imports the patch.
  for (const delay of [0, 100, 200, 300]) {
    const run = spawnCli(t, soak, ['load', patchOf('express'), ...pid]);
    await new Promise((r) => setTimeout(r, delay));
    run.proc.kill('SIGKILL');
    await run.done;
    // A load the process had already received finishes on its own: give it time, then look.
    await new Promise((r) => setTimeout(r, 300));
    const tree = ((await client.request('list')) as { patches: TreePatch[] }).patches;
    assertCoherent(tree);
    assert.ok(
      tree.length === 0 || (tree.length === 1 && tree[0]?.name === 'soak-express-hot' && tree[0].enabled),
      `after a kill at ${delay} ms: ${JSON.stringify(tree)}`,
    );
    const body = JSON.parse((await http(app, '/items/7')).body) as { api?: number };
    assert.equal(
      body.api,
      tree.length === 1 ? 2 : undefined,
      `the code that runs matches the tree (${delay} ms)`,
    );
    const next = await cli(t, soak, ['load', patchOf('express'), ...pid, '--json']);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(JSON.parse(next.stdout).already, tree.length === 1, next.stdout);
    await client.request('disable', { name: 'soak-express-hot' });
    await waitTransition(client, 'soak-express-hot');
    await client.request('remove', { name: 'soak-express-hot' });
  }
  assert.deepEqual(await listTree(t, soak, app.pid), []);
});

/** A connection that writes `bytes` again and again until closed; errors (a server that hangs up) end it. */
function hammer(path: string, bytes: () => Buffer): Socket {
  const s = connect(path);
  s.on('error', () => {});
  const write = () => {
    if (!s.destroyed && s.writable) s.write(bytes(), () => setImmediate(write));
  };
  s.on('connect', write);
  return s;
}

function frame(value: unknown): Buffer {
  const body = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

test('a flooded control socket: the app keeps serving and other clients are still answered', async (t) => {
  const { soak, app, client } = await started(t, 'express');
  const sock = socketPath(soak.controlDir, app.pid);
  assert.equal((await cli(t, soak, ['load', patchOf('express'), '--pid', String(app.pid)])).code, 0);
  const load = startLoad(app, 4);
  // A failed assertion must not leave autocannon running: the file would never exit.
  t.after(() => load.stop().catch(() => {}));
  const flood: Socket[] = [];
  t.after(() => flood.forEach((s) => s.destroy()));
  const hello = frame({ hello: 'livepatch', protocol: 1 });
  for (let i = 0; i < 60; i++) {
    // Raw garbage, garbage after a good hello, unknown commands, malformed JSON, and impossible lengths.
    flood.push(hammer(sock, () => Buffer.from(Array.from({ length: 512 }, () => (Math.random() * 256) | 0))));
    const greeted = connect(sock);
    greeted.on('error', () => {});
    greeted.on('connect', () => {
      greeted.write(hello);
      const spam = () => {
        if (greeted.destroyed) return;
        greeted.write(
          Buffer.concat([frame('{nope'), frame({ id: 1, command: 'reboot' }), frame([1, 2])]),
          () => setImmediate(spam),
        );
      };
      spam();
    });
    flood.push(greeted);
    flood.push(hammer(sock, () => Buffer.from([0xff, 0xff, 0xff, 0xf0])));
  }
  // During the flood: the connected client's commands are answered, in time.
  const t0 = Date.now();
  let answered = 0;
  let slowest = 0;
  while (Date.now() - t0 < 2000) {
    const t1 = Date.now();
    const tree = (await client.request('list')) as { patches: { name: string }[] };
    slowest = Math.max(slowest, Date.now() - t1);
    assert.equal(tree.patches[0]?.name, 'soak-express-hot');
    answered += 1;
    await new Promise((r) => setTimeout(r, 20));
  }
  // Every bad frame is answered (one EPROTO each), so the flood costs the loop time: slower, never dropped.
  assert.ok(answered >= 3, `only ${answered} answers in 2 s`);
  // Generous: a starved client would never be answered at all (the request would hang); this bound only keeps a
  // pathological slowdown visible on a loaded CI machine, where 2 s was seen with nothing wrong.
  assert.ok(slowest < 5000, `slowest answer ${slowest} ms`);
  t.diagnostic(`during the flood: ${answered} list answers in 2 s, slowest ${slowest} ms`);
  // Commands that change the process still go through during the flood.
  await client.request('disable', { name: 'soak-express-hot' });
  await client.request('enable', { name: 'soak-express-hot' });
  for (const s of flood) s.destroy();
  const r = await load.stop();
  assert.equal(r.non2xx + r.errors + r.timeouts, 0, JSON.stringify(r));
  assert.ok(r.requests > 0);
  t.diagnostic(`HTTP during the flood: ${r.requests} requests, p99 ${r.latencyP99} ms, none failed`);
  // Connections that never say hello hold the server's 32 slots until their 10 s handshake timeout; a client
  // already connected is still answered. (New clients are refused meanwhile: see docs/soak.md, Findings.)
  const idle = Array.from({ length: 40 }, () => connect(sock).on('error', () => {}));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(((await client.request('list')) as { patches: unknown[] }).patches.length, 1);
  for (const s of idle) s.destroy();
  await new Promise((r) => setTimeout(r, 200));
  // A new client after the flood: the CLI connects and sees a coherent tree.
  const tree = await settledTree(t, soak, app.pid);
  assert.deepEqual(
    tree.map((p) => [p.name, p.enabled]),
    [['soak-express-hot', true]],
  );
  assert.equal((await http(app, '/health')).status, 200);
});

test('a patch loaded under heavy CPU load completes, or times out with exit 3, and the tree stays coherent', async (t) => {
  const { soak, app } = await started(t, 'fastify');
  const pid = ['--pid', String(app.pid)];
  // A worker thread spinning beside the event loop, and requests that each spin the loop itself.
  assert.equal((await http(app, '/__soak/burn', { method: 'POST' })).status, 200);
  const blocked = http(app, '/__soak/spin?ms=1500'); // the loop is blocked when the CLI connects
  const load = spawnCli(t, soak, ['load', patchOf('fastify'), ...pid, '--timeout', '5']);
  const r = await load.done;
  assert.ok(r.code === 0 || r.code === 3, `exit ${r.code}: ${r.stderr}`);
  assert.equal((await blocked).status, 200);
  const tree = await settledTree(t, soak, app.pid);
  assert.deepEqual(
    tree.map((p) => [p.name, p.enabled]),
    [['soak-fastify-hot', true]],
  );
  assert.equal(JSON.parse((await http(app, '/items/7')).body).api, 2);

  // Now under spinning requests from many connections: disable, then enable again, each within its timeout.
  const spinners = Array.from({ length: 6 }, async () => {
    for (let i = 0; i < 12; i++) assert.equal((await http(app, '/__soak/spin?ms=40')).status, 200);
  });
  for (const verb of ['disable', 'enable']) {
    const v = await cli(t, soak, [verb, 'soak-fastify-hot', ...pid, '--timeout', '5']);
    assert.ok(v.code === 0 || v.code === 3, `${verb}: exit ${v.code}: ${v.stderr}`);
    await settledTree(t, soak, app.pid);
  }
  await Promise.all(spinners);
  const end = await settledTree(t, soak, app.pid);
  assert.deepEqual(
    end.map((p) => [p.name, p.enabled]),
    [['soak-fastify-hot', true]],
  );
  assert.equal((await http(app, '/health')).status, 200);
  const c = await connectApp(app, soak);
  assert.equal(((await c.request('meta')) as { pid: number }).pid, app.pid);
  c.close();
});
