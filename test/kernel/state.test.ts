// Tests for `kernel enable|disable|force|unload`: the kernel's rules for each write, reversal, force's pins, rmmod.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modulesPinnedByForce } from '../../src/kernel/state.js';
import { sysfsWriteError } from '../../src/kernel/sysfs.js';
import type { KernelPatch } from '../../src/kernel/sysfs.js';
import { FakeSystem, kernel } from './fake-system.js';

test('disable starts the unpatching transition and waits until the kernel frees the patch', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_a' });
  sys.addTask({ pid: 10, comm: 'bash' });
  sys.startKernel();
  const r = await kernel(['disable', 'lp_a', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^'lp_a': unpatching complete, patch removed \(\d+\.\ds\)\n$/);
  assert.equal(sys.exists('sys/kernel/livepatch/lp_a'), false);
  assert.equal(sys.read('sys/module/lp_a/refcnt'), '0\n');
});

test('names may be given with dashes or .ko, as the module file is named', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'livepatch_cmdline' });
  sys.startKernel();
  const r = await kernel(['disable', 'livepatch-cmdline.ko', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
});

test('enable after disable says that a disabled patch cannot be re-enabled since 5.1', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addModule('lp_gone', 0);
  const r = await kernel(['enable', 'lp_gone', ...sys.args]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /patch 'lp_gone' was disabled and cannot be re-enabled: since Linux 5\.1 a disabled patch is freed\. To apply it again: livepatch kernel unload lp_gone, then livepatch kernel load lp_gone\.ko/,
  );
});

test('enable during an unpatching transition reverses it back to patched', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_back', enabled: false, transition: true });
  sys.addTask({ pid: 5, comm: 'sleepy', patch_state: 1 });
  sys.startKernel();
  const r = await kernel(['enable', 'lp_back', '--json', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /'lp_back': reversing transition from unpatching to patching/);
  assert.equal(r.json().patch.enabled, true);
  assert.equal(sys.read('sys/kernel/livepatch/lp_back/enabled').trim(), '1');
});

test('disable of a stalled patching transition reverses it; a stalled disable exits 3', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_s' });
  sys.addTask({ pid: 77, comm: 'blocker' });
  sys.startKernel([77]);
  const r = await kernel(['disable', 'lp_s', '--timeout', '0.2', ...sys.args]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /'lp_s': the unpatching transition did not finish in .*\n +77 blocker\n/);
  assert.match(r.stdout, /to reverse it: {2}livepatch kernel enable lp_s/);
  // Now reverse it with --reverse-on-timeout on a second, equally stalled disable: not possible, it is already
  // disabling; the kernel's answer for a second 0 is EINVAL, said plainly.
  const again = await kernel(['disable', 'lp_s', ...sys.args]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /patch 'lp_s' is already being disabled/);
});

const refusals: {
  what: string;
  setup: (sys: FakeSystem) => void;
  argv: string[];
  code: string;
  message: RegExp;
}[] = [
  {
    what: 'enable of an unknown patch',
    setup: () => {},
    argv: ['enable', 'nope'],
    code: 'ENOENT',
    message: /^no such patch 'nope'$/,
  },
  {
    what: 'enable of an enabled patch',
    setup: (s) => s.addPatch({ name: 'p' }),
    argv: ['enable', 'p'],
    code: 'EINVAL',
    message: /patch 'p' is already enabled/,
  },
  {
    what: 'disable of a freed patch with its module loaded',
    setup: (s) => s.addModule('p', 0),
    argv: ['disable', 'p'],
    code: 'ENOENT',
    message:
      /patch 'p' was disabled \(or replaced\) and freed; its module is still loaded: livepatch kernel unload p/,
  },
  {
    what: 'disable while another patch is in transition',
    setup: (s) => (s.addPatch({ name: 'p' }), s.addPatch({ name: 'q', transition: true })),
    argv: ['disable', 'p'],
    code: 'EBUSY',
    message: /patch 'q' is in transition; wait for it before changing 'p'/,
  },
  {
    what: 'force of a patch not in transition',
    setup: (s) => s.addPatch({ name: 'p' }),
    argv: ['force', 'p'],
    code: 'EINVAL',
    message: /patch 'p' is not in transition; there is nothing to force/,
  },
  {
    what: 'an invalid name',
    setup: () => {},
    argv: ['disable', '../etc'],
    code: 'EINVAL',
    message: /invalid patch name '\.\.\/etc'/,
  },
  {
    what: 'unload of an unknown module',
    setup: () => {},
    argv: ['unload', 'nope'],
    code: 'ENOENT',
    message: /no such patch or module 'nope'/,
  },
];
for (const c of refusals) {
  test(`refuses ${c.what}: ${c.code}`, async (t) => {
    const sys = new FakeSystem();
    t.after(sys.cleanup);
    c.setup(sys);
    const r = await kernel([...c.argv, '--json', ...sys.args, ...sys.modTools()]);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.json().error.code, c.code);
    assert.match(r.json().error.message, c.message);
  });
}

test('force completes a stalled transition and warns which modules it pins for good', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_old', stack_order: 1 });
  sys.addPatch({ name: 'lp_cumulative', replace: true, stack_order: 2, transition: true });
  sys.addTask({ pid: 9, comm: 'stuck', patch_state: 0 });
  sys.startKernel([9]);
  const r = await kernel(['force', 'lp_cumulative', '--json', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /warning: forcing remaining tasks to the patched state: 1 task\(s\) switch without the stack check/,
  );
  assert.match(r.stderr, /warning: module\(s\) 'lp_old' can never be removed after this/);
  assert.deepEqual(r.json().forced, ['lp_old']);
  assert.equal(sys.read('proc/9/patch_state'), '-1\n');
});

test("force's pins follow klp_force_transition: unpatching pins itself, replace pins the rest, else none", () => {
  const p = (name: string, enabled: boolean, replace: boolean): KernelPatch => ({
    name,
    enabled,
    transition: false,
    replace,
    stack_order: null,
    objects: [],
  });
  const all = [p('a', true, false), p('b', true, false)];
  assert.deepEqual(modulesPinnedByForce(all, p('b', false, false)), ['b']);
  assert.deepEqual(modulesPinnedByForce(all, p('b', true, true)), ['a']);
  assert.deepEqual(modulesPinnedByForce(all, p('b', true, false)), []);
});

test('unload disables, waits for the patch to be freed, then removes the module', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_u' });
  sys.addTask({ pid: 3, comm: 'cat' });
  sys.startKernel();
  const r = await kernel(['unload', 'lp_u', ...sys.args, ...sys.modTools()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /disabling patch 'lp_u'/);
  assert.match(r.stdout, /'lp_u': unpatching complete, patch removed .*\nmodule 'lp_u' removed\n$/);
  assert.equal(sys.exists('sys/module/lp_u'), false);
});

test('unload of a module whose patch is already freed only removes the module', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addModule('lp_rest', 0);
  const r = await kernel(['unload', 'lp_rest', ...sys.args, ...sys.modTools()]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "module 'lp_rest' removed\n");
});

test('unload of a forced patch explains that its module can never be removed', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_f', enabled: false, transition: true });
  sys.addTask({ pid: 4, comm: 'stuck', patch_state: 1 });
  sys.startKernel([4]);
  const forced = await kernel(['force', 'lp_f', ...sys.args]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stderr, /module\(s\) 'lp_f' can never be removed/);
  assert.doesNotMatch(forced.stdout, /warning/, 'warnings go to stderr only, once');
  const r = await kernel(['unload', 'lp_f', '--json', ...sys.args, ...sys.modTools()]);
  assert.equal(r.code, 1);
  assert.equal(r.json().error.code, 'EBUSY');
  assert.match(
    r.json().error.message,
    /module 'lp_f' is still in use \(refcnt 1\); a patch whose transition was forced can never be removed/,
  );
});

const writeErrors: [string, string, string, string, RegExp][] = [
  [
    'EINVAL',
    'enabled',
    '1',
    'EINVAL',
    /patch 'p' is already enabled, or was disabled and cannot be re-enabled/,
  ],
  ['EINVAL', 'enabled', '0', 'EINVAL', /patch 'p' is already disabled or being disabled/],
  ['EINVAL', 'force', '1', 'EINVAL', /patch 'p' is not in transition; there is nothing to force/],
  ['EBUSY', 'enabled', '0', 'EBUSY', /another patch is in transition/],
  [
    'EACCES',
    'enabled',
    '0',
    'EPERM',
    /permission denied writing '\/sys\/kernel\/livepatch\/p\/enabled' \(run as root\)/,
  ],
  ['ENOENT', 'enabled', '0', 'ENOENT', /no such patch 'p'/],
];
for (const [errno, attr, value, code, message] of writeErrors) {
  test(`a sysfs write failing with ${errno} on '${attr}' <- ${value} reads as ${code}`, () => {
    const e = Object.assign(new Error(errno), { code: errno });
    const mapped = sysfsWriteError(e, 'p', attr, value);
    assert.equal(mapped.code, code);
    assert.match(mapped.message, message);
  });
}
