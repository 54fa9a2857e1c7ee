// Tests for `kernel install|uninstall` and the boot unit they manage, under --root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync, writeFileSync } from 'node:fs';
import { FakeSystem, kernel, livepatchModinfo, makeModule } from './fake-system.js';

test('install copies the module under its kernel release and enables the boot unit', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  const file = sys.path('lp-boot.ko');
  writeFileSync(file, makeModule(livepatchModinfo('lp_boot')));
  const r = await kernel(['install', file, '--json', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json().installed.kernel, '6.1.0-56-amd64');
  assert.ok(sys.exists('root/var/lib/livepatch/kernel/6.1.0-56-amd64/lp_boot.ko'));
  const unit = sys.read('root/etc/systemd/system/livepatch-kernel.service');
  assert.match(
    unit,
    /ExecStart=\/bin\/sh -c .*\/var\/lib\/livepatch\/kernel\/"\$\$\(uname -r\)"\/\*\.ko.*insmod "\$\$m"/,
  );
  assert.match(unit, /ConditionKernelCommandLine=!livepatch\.kernel=0/);
  assert.equal(
    readlinkSync(sys.path('root/etc/systemd/system/multi-user.target.wants/livepatch-kernel.service')),
    '/etc/systemd/system/livepatch-kernel.service',
  );
  const listed = await kernel(['list', '--json', ...sys.args]);
  assert.deepEqual(
    listed.json().installed.map((m: { name: string }) => m.name),
    ['lp_boot'],
  );

  const again = await kernel(['install', file, ...sys.args]);
  assert.match(again.stdout, /\(replaced the previous copy\)/);

  const u = await kernel(['uninstall', 'lp_boot', '--json', ...sys.args]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(u.json().unitRemoved, true);
  assert.equal(sys.exists('root/var/lib/livepatch/kernel/6.1.0-56-amd64/lp_boot.ko'), false);
  assert.equal(sys.exists('root/etc/systemd/system/livepatch-kernel.service'), false);
});

test('a module for another kernel installs for that kernel; --kernel-release must then agree', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  const file = sys.path('lp-next.ko');
  writeFileSync(file, makeModule(livepatchModinfo('lp_next', '6.12.0-9-amd64')));
  const r = await kernel(['install', file, ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /installed 'lp_next' for kernel '6\.12\.0-9-amd64'.*\n.*\(when that kernel boots\)/);
  const bad = await kernel(['install', file, '--kernel-release', '6.1.0-56-amd64', ...sys.args]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid module version '6\.12\.0-9-amd64' for kernel '6\.1\.0-56-amd64'/);
  const u = await kernel(['uninstall', 'lp_next', '--kernel-release', '6.12.0-9-amd64', ...sys.args]);
  assert.equal(u.code, 0, u.stderr);
});

test('install refuses a module that is not a livepatch module; uninstall of an unknown one is ENOENT', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  const file = sys.path('plain.ko');
  writeFileSync(file, makeModule([['vermagic', '6.1.0-56-amd64 SMP']]));
  const r = await kernel(['install', file, '--json', ...sys.args]);
  assert.equal(r.json().error.code, 'EINVAL');
  assert.match(r.json().error.message, /is not a livepatch module/);
  const u = await kernel(['uninstall', 'nothing', '--json', ...sys.args]);
  assert.equal(u.json().error.code, 'ENOENT');
  assert.match(
    u.json().error.message,
    /patch module 'nothing' is not installed for kernel '6\.1\.0-56-amd64'/,
  );
});
