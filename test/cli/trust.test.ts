// End-to-end: keygen, sign, enforcing mode (CLI check and the process's own check), install at start-up, run.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import { cliEntry, fixture, spawnNode } from '../helpers.js';
import { cli, cliJson, get, lpEnv, startApp } from '../control/harness.js';

test('enforcing mode: only patches signed by a trusted key load; the process checks again', async (t) => {
  const lp = lpEnv(t);
  const base = join(lp.root, 'ops');
  const other = join(lp.root, 'other');
  const kg = await cli(lp, ['keygen', base]);
  assert.equal(kg.code, 0, kg.stderr);
  assert.match(kg.stdout, /^key [0-9a-f]{16}\n/);
  assert.equal(statSync(`${base}.key`).mode & 0o777, 0o600);
  assert.equal((await cli(lp, ['keygen', base])).code, 1, 'never overwrites a key');
  assert.equal((await cli(lp, ['keygen', other])).code, 0);
  const keyId = /^key ([0-9a-f]{16})/.exec(kg.stdout)?.[1];

  const signed = join(lp.root, 'fix-price.js');
  copyFileSync(fixture('cli/patches/fix-price.js'), signed);
  const unsigned = join(lp.root, 'unsigned.js');
  copyFileSync(fixture('cli/patches/fix-price.js'), unsigned);
  const foreign = join(lp.root, 'foreign.js');
  copyFileSync(fixture('cli/patches/fix-price.js'), foreign);
  const s = await cli(lp, ['sign', signed, '--key', `${base}.key`]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, new RegExp(`with key ${keyId}: wrote '.*fix-price\\.js\\.sig'`));
  assert.equal((await cli(lp, ['sign', foreign, '--key', `${other}.key`])).code, 0);
  assert.equal((await cli(lp, ['sign', foreign])).code, 1, "'sign' without --key");
  const tampered = join(lp.root, 'tampered.js');
  writeFileSync(tampered, readFileSync(signed, 'utf8').replace('qty * unit', 'qty * unit * 0'));
  copyFileSync(`${signed}.sig`, `${tampered}.sig`);

  const app = await startApp(t, lp, { LIVEPATCH_TRUSTED_KEYS: `${base}.pub` });
  const pid = ['--pid', String(app.pid)];
  const cases: [string, RegExp][] = [
    [
      unsigned,
      /patch '.*unsigned\.js' is not signed \(no '.*unsigned\.js\.sig'\) and process \d+ only loads signed patches/,
    ],
    [foreign, /signed by key '[0-9a-f]{16}', which process \d+ does not trust/],
    // The CLI cannot tell (the key is trusted); the process verifies the bytes and refuses.
    [tampered, /signature does not match the patch: the patch changed after it was signed/],
  ];
  for (const [file, message] of cases) {
    const r = await cli(lp, ['load', file, ...pid]);
    assert.equal(r.code, 1, file);
    assert.match(r.stderr, message, file);
  }
  // A client that skips the CLI's check meets the process's.
  const c = await ControlClient.connect(join(lp.controlDir, `${app.pid}.sock`));
  assert.equal(c.hello.enforcing, true);
  assert.deepEqual(c.hello.keys, [keyId]);
  await assert.rejects(
    c.request('load', { source: readFileSync(unsigned).toString('base64'), file: 'unsigned.js' }),
    {
      code: 'EPERM',
      message: /not signed/,
    },
  );
  c.close();
  assert.equal((await get(app.port, '/')).body, '21');

  const ok = await cli(lp, ['load', signed, ...pid]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((await get(app.port, '/')).body, '20');
  assert.match((await cli(lp, ['info', 'fix-price', ...pid])).stdout, new RegExp(`signed by: ${keyId}`));
  // The same bytes without their signature are refused, not answered "already loaded".
  const c2 = await ControlClient.connect(join(lp.controlDir, `${app.pid}.sock`));
  await assert.rejects(
    c2.request('load', { source: readFileSync(signed).toString('base64'), file: 'x.js' }),
    {
      code: 'EPERM',
    },
  );
  c2.close();

  // With trusted keys in the CLI's own environment, a bad patch is refused before any process is asked.
  const local = await cli(lp, ['load', unsigned, '--pid', '999999999'], {
    env: { LIVEPATCH_TRUSTED_KEYS: `${base}.pub` },
  });
  assert.equal(local.code, 1);
  assert.match(local.stderr, /patch '.*unsigned\.js': patch is not signed/);
});

test('enforcing with an unreadable key set fails closed: one warning, nothing loads, the app runs', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp, { LIVEPATCH_TRUSTED_KEYS: join(lp.root, 'missing.pub') });
  assert.match(app.child.stderr(), /enforcing mode with no trusted key, no patch will load/);
  const r = await cli(lp, ['load', fixture('cli/patches/fix-price.js'), '--pid', String(app.pid)]);
  assert.equal(r.code, 1);
  assert.equal((await get(app.port, '/')).body, '21');
});

test('installed patches load at start-up; a bad one is skipped with a warning; run starts under the loader', async (t) => {
  const lp = lpEnv(t);
  const inst = await cli(lp, ['install', fixture('cli/patches/fix-price.js')]);
  assert.equal(inst.code, 0, inst.stderr);
  assert.match(inst.stdout, /installed 'fix-price\.js' in .*installed/);
  assert.equal(statSync(lp.installDir).mode & 0o777, 0o700);
  assert.equal((await cli(lp, ['install', fixture('cli/patches/throws.js')])).code, 0);
  assert.equal(statSync(join(lp.installDir, 'fix-price.js')).mode & 0o777, 0o600);
  // A file planted with a mode that lets others rewrite it is not run.
  writeFileSync(join(lp.installDir, 'planted.js'), readFileSync(fixture('cli/patches/later-module.js')));
  chmodSync(join(lp.installDir, 'planted.js'), 0o666);
  assert.equal((await cli(lp, ['install', '/nonexistent/x.js'])).code, 1);

  const run = spawnNode(
    [cliEntry, 'run', '--name', 'shop', '--', process.execPath, fixture('cli/app/server.js')],
    {
      env: lp.env,
    },
  );
  t.after(() => run.kill());
  const port = Number((await run.waitFor(/port (\d+)/))[1]);
  assert.equal((await get(port, '/')).body, '20', 'patched before the first request');
  assert.match(
    run.stderr(),
    /livepatch: warning: installed patch 'throws\.js' skipped: patch 'throws\.js' failed to import/,
  );
  assert.match(
    run.stderr(),
    /livepatch: warning: installed patch 'planted\.js' skipped: '.*planted\.js' is writable by group or others \(mode 666\)/,
  );
  const ps = await cliJson(lp, ['ps', '--json']);
  assert.equal(ps.processes.length, 1);
  assert.equal(ps.processes[0].name, 'shop');
  assert.deepEqual(ps.processes[0].patches, ['fix-price']);
  const status = await cli(lp, ['info', 'fix-price', '--name', 'shop']);
  assert.match(status.stdout, /\(installed patch\)/);
  assert.match(
    (await cli(lp, ['list', '--name', 'shop'])).stdout,
    /Installed patches \(.*\):\n {2}fix-price\.js\n {2}planted\.js\n {2}throws\.js/,
  );

  // The kill switch: the same service started with LIVEPATCH_INSTALL_DIR=off comes up without installed patches.
  const off = await startApp(t, lp, { LIVEPATCH_INSTALL_DIR: 'off' });
  assert.equal((await get(off.port, '/')).body, '21');
  assert.doesNotMatch(off.child.stderr(), /planted|throws/);
  assert.equal(
    (
      await cli(lp, ['install', fixture('cli/patches/fix-price.js')], {
        env: { LIVEPATCH_INSTALL_DIR: 'off' },
      })
    ).code,
    1,
  );

  const un = await cli(lp, ['uninstall', 'fix-price.js']);
  assert.equal(un.code, 0);
  assert.ok(!existsSync(join(lp.installDir, 'fix-price.js')));
  assert.equal((await cli(lp, ['uninstall', 'fix-price.js'])).code, 1);
  assert.equal((await cli(lp, ['uninstall', '../etc/passwd'])).code, 1);

  run.proc.kill('SIGTERM');
  assert.notEqual(await run.exited, 0);
});
