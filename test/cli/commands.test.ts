// End-to-end: the real `livepatch` CLI against a real service under the loader, every command and its output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixture, spawnNode, cliEntry } from '../helpers.js';
import { cli, cliJson, get, lpEnv, startApp } from '../control/harness.js';

const fix = fixture('cli/patches/fix-price.js');

test('load, list, info, status, symbols, log, ps, disable, enable, unload — text and --json', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp, { LIVEPATCH_NAME: 'shop' });
  const pid = ['--pid', String(app.pid)];

  const ps0 = await cliJson(lp, ['ps', '--json']);
  assert.deepEqual(
    ps0.processes.map((p: { pid: number; name: string; node: string; patches: string[] }) => [
      p.pid,
      p.name,
      p.node,
      p.patches,
    ]),
    [[app.pid, 'shop', process.version, []]],
  );
  const syms = await cliJson(lp, ['symbols', ...pid, '--json']);
  const mod = syms.modules.find((m: { id: string }) => m.id === 'fixture-shop/server.js');
  assert.ok(mod, JSON.stringify(syms));
  assert.match(mod.hash, /^[0-9a-f]{64}$/);
  assert.ok(mod.funcs.some((f: { name: string; sympos: number }) => f.name === 'price' && f.sympos === 1));
  assert.deepEqual(
    mod.unpatchable.map((u: { name: string }) => u.name),
    ['hotPath'],
  );
  assert.match(
    (await cli(lp, ['symbols', 'server.js', ...pid])).stdout,
    /\n {2}hotPath {2}\[not patchable: .*notrace.*\]/,
  );
  assert.match(
    (await cli(lp, ['symbols', 'server.js', ...pid])).stdout,
    /fixture-shop\/server\.js {2}sha256:[0-9a-f]{64}\n {2}price +1 +function/,
  );

  assert.equal((await get(app.port, '/')).body, '21');
  const load = await cli(lp, ['load', fix, ...pid]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(
    load.stdout,
    /loading patch 'fix-price\.js' into pid \d+ \(shop\)\n.*waiting \(up to 15 s\).*\npatched 'fix-price': transition complete \(\d+ ms\)/,
  );
  assert.equal((await get(app.port, '/')).body, '20');

  const again = await cli(lp, ['load', fix, ...pid, '--json']);
  assert.equal(again.code, 0);
  assert.equal(JSON.parse(again.stdout).already, true);
  const other = await cli(lp, ['load', fixture('cli/patches/fix-price-other.js'), ...pid]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /patch 'fix-price' is already loaded with other contents; unload it first/);

  // The contract's fields (DESIGN.md §6); more may be added.
  const contract = (tree: { patches: Record<string, unknown>[] }) => ({
    patches: tree.patches.map((p) => ({
      name: p['name'],
      enabled: p['enabled'],
      transition: p['transition'],
      replace: p['replace'],
      stack_order: p['stack_order'],
      objects: (p['objects'] as Record<string, unknown>[]).map((o) => ({
        name: o['name'],
        patched: o['patched'],
        funcs: (o['funcs'] as Record<string, unknown>[]).map((f) => ({
          name: f['name'],
          sympos: f['sympos'],
        })),
      })),
    })),
  });
  assert.deepEqual(contract(await cliJson(lp, ['list', ...pid, '--json'])), {
    patches: [
      {
        name: 'fix-price',
        enabled: true,
        transition: false,
        replace: false,
        stack_order: 1,
        objects: [{ name: 'fixture-shop/server.js', patched: true, funcs: [{ name: 'price', sympos: 1 }] }],
      },
    ],
  });
  assert.match(
    (await cli(lp, ['list', ...pid])).stdout,
    /fix-price \[enabled\] {2}stack_order 1\n {4}fixture-shop\/server\.js\n {6}price,1/,
  );

  const info = await cli(lp, ['info', 'fix-price', ...pid]);
  assert.match(info.stdout, /Patch information for 'fix-price'/);
  assert.match(info.stdout, /source: fix-price\.js sha256:[0-9a-f]{64} \(sent over the control socket\)/);
  assert.match(info.stdout, /fixes: SHOP-1, CVE-2026-0001/);
  assert.match(info.stdout, /object fixture-shop\/server\.js \(patched\)/);
  const infoJson = await cliJson(lp, ['info', 'fix-price', ...pid, '--json']);
  assert.deepEqual(infoJson.origin.fixes, ['SHOP-1', 'CVE-2026-0001']);

  const status = await cli(lp, ['status']);
  assert.match(
    status.stdout,
    /pid \d+ \(shop\) — node v[\d.]+, up .*\n {2}fix-price \[enabled\] 1 function, since .* from fix-price\.js sha256:[0-9a-f]{12}\n {4}fixes: SHOP-1, CVE-2026-0001/,
  );
  assert.match(
    (await cli(lp, ['ps'])).stdout,
    /PID +NAME +NODE +UPTIME +PATCHES\n\d+ +shop +v[\d.]+ +\S+( \S+)? +fix-price/,
  );
  const log = await cli(lp, ['log', ...pid]);
  assert.match(log.stdout, /livepatch: enabling patch 'fix-price'/);
  assert.match(log.stdout, /livepatch: 'fix-price': patching complete/);
  const since = (await cliJson(lp, ['log', ...pid, '--json'])).lines.at(-1).seq;
  assert.deepEqual((await cliJson(lp, ['log', ...pid, '--json', '--since', String(since)])).lines, []);

  // The sysfs files, as a kernel operator's scripts use them.
  assert.equal((await cli(lp, ['sysfs', '/sys/kernel/livepatch/fix-price/enabled', ...pid])).stdout, '1\n');
  assert.equal((await cli(lp, ['sysfs', 'fix-price/fixture-shop/server.js/patched', ...pid])).stdout, '1\n');
  const badWrite = await cli(lp, ['sysfs', 'fix-price/enabled', 'maybe', ...pid]);
  assert.equal(badWrite.code, 1);
  assert.match(badWrite.stderr, /livepatch: error: /);
  assert.equal((await cli(lp, ['sysfs', 'fix-price/enabled', '0', ...pid])).code, 0);
  assert.equal((await cli(lp, ['sysfs', 'fix-price/enabled', ...pid])).stdout, '0\n');
  assert.equal((await get(app.port, '/')).body, '21');
  assert.equal((await cli(lp, ['enable', 'fix-price', ...pid])).code, 0);

  const dis = await cli(lp, ['disable', 'fix-price', ...pid]);
  assert.equal(dis.code, 0, dis.stderr);
  assert.match(dis.stdout, /disabled 'fix-price': transition complete/);
  assert.equal((await get(app.port, '/')).body, '21');
  assert.match((await cli(lp, ['list', ...pid])).stdout, /fix-price \[disabled\]/);
  assert.equal((await cli(lp, ['enable', 'fix-price', ...pid])).code, 0);
  assert.equal((await get(app.port, '/')).body, '20');
  const un = await cli(lp, ['unload', 'fix-price', ...pid]);
  assert.equal(un.code, 0, un.stderr);
  assert.match(un.stdout, /disabled 'fix-price'.*\n.*unloaded 'fix-price'/);
  assert.equal((await get(app.port, '/')).body, '21');
  assert.deepEqual(await cliJson(lp, ['list', ...pid, '--json']), { patches: [] });
  const gone = await cli(lp, ['info', 'fix-price', ...pid]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no such patch 'fix-price'/);
});

test('log -f follows new lines as they are written', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const follow = spawnNode([cliEntry, 'log', '-f', '--pid', String(app.pid)], { env: lp.env });
  t.after(() => follow.kill());
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await cli(lp, ['load', fix, '--pid', String(app.pid)])).code, 0);
  await follow.waitFor(/livepatch: 'fix-price': patching complete/, 5000);
  follow.proc.kill('SIGINT');
  assert.equal(await follow.exited, 0);
});

test('--all, --name, implicit choice, and stale sockets of dead processes', async (t) => {
  const lp = lpEnv(t);
  const a = await startApp(t, lp, { LIVEPATCH_NAME: 'twin' });
  const b = await startApp(t, lp, { LIVEPATCH_NAME: 'twin' });
  const ambiguous = await cli(lp, ['load', fix, '--name', 'twin']);
  assert.equal(ambiguous.code, 2);
  assert.match(ambiguous.stderr, /2 processes are named 'twin' .*: add --all or choose one with --pid/);
  const noChoice = await cli(lp, ['list']);
  assert.equal(noChoice.code, 2);
  assert.match(noChoice.stderr, /choose a process with --pid, --name or --all/);

  const all = await cli(lp, ['load', fix, '--name', 'twin', '--all', '--json']);
  assert.equal(all.code, 0, all.stderr);
  const r = JSON.parse(all.stdout);
  assert.deepEqual(r.processes.map((p: { pid: number }) => p.pid).sort(), [a.pid, b.pid].sort());
  assert.ok(r.processes.every((p: { result: { name: string } }) => p.result.name === 'fix-price'));
  assert.equal((await get(a.port, '/')).body, '20');
  assert.equal((await get(b.port, '/')).body, '20');

  // A stopped process (or one whose event loop is blocked) is listed as not answering, after a bounded wait.
  process.kill(a.pid, 'SIGSTOP');
  try {
    assert.match((await cli(lp, ['ps'])).stdout, new RegExp(`${a.pid} +twin .*\\(not answering\\)`));
  } finally {
    process.kill(a.pid, 'SIGCONT');
  }

  b.child.proc.kill('SIGKILL');
  await b.child.exited;
  const ps = await cliJson(lp, ['ps', '--json']);
  assert.deepEqual(
    ps.processes.map((p: { pid: number }) => p.pid),
    [a.pid],
  );
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(
    readdirSync(lp.controlDir).filter((f) => f.startsWith(`${b.pid}.`)),
    [],
  );
  // One process left: read-only commands pick it without a selector.
  assert.match((await cli(lp, ['list'])).stdout, /fix-price \[enabled\]/);
});
