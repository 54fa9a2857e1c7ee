// Port of the kernel's selftest test-livepatch.sh: function patching, stacking, atomic replace and patches
// for modules loaded before or after them, asserting the exact log transcript against a real target process.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DIS, EN, LOAD, RM, startTarget, type Target } from './target.js';

let t: Target;
before(async () => {
  t = await startTarget();
});
after(() => t.close());

const PROC = encodeURIComponent('test-klp/proc.js');
async function call(mod: string, fn: string): Promise<string> {
  return (JSON.parse(await t.get(`/call/${mod}/${fn}`)) as { first: string }).first;
}
/** The kernel test greps /proc/cmdline and /proc/meminfo into the log: the same, through real requests. */
async function showPatched(): Promise<void> {
  for (const fn of ['cmdline_proc_show', 'meminfo_proc_show']) {
    const v = await call(PROC, fn);
    if (v.includes('live patched')) await t.cmd('echo', { line: v });
  }
}

test('basic function patching', async () => {
  t.start();
  await t.cmd('load', { name: 'test_klp_livepatch' });
  assert.equal(await call(PROC, 'cmdline_proc_show'), 'test_klp_livepatch: this has been live patched');
  await t.cmd('disable', { name: 'test_klp_livepatch' });
  await t.cmd('unload', { name: 'test_klp_livepatch' });
  assert.equal(await call(PROC, 'cmdline_proc_show'), 'original cmdline');
  assert.deepEqual(t.transcript(), [
    LOAD('test_klp_livepatch'),
    ...EN('test_klp_livepatch'),
    ...DIS('test_klp_livepatch'),
    RM('test_klp_livepatch'),
  ]);
});

test('multiple livepatches', async () => {
  t.start();
  await t.cmd('load', { name: 'test_klp_livepatch' });
  await showPatched();
  await t.cmd('load', { name: 'test_klp_atomic_replace', params: 'replace=0' });
  await showPatched();
  await t.cmd('disable', { name: 'test_klp_atomic_replace' });
  await t.cmd('unload', { name: 'test_klp_atomic_replace' });
  await showPatched();
  await t.cmd('disable', { name: 'test_klp_livepatch' });
  await t.cmd('unload', { name: 'test_klp_livepatch' });
  await showPatched();
  assert.deepEqual(t.transcript(), [
    LOAD('test_klp_livepatch'),
    ...EN('test_klp_livepatch'),
    'test_klp_livepatch: this has been live patched',
    LOAD('test_klp_atomic_replace', 'replace=0'),
    ...EN('test_klp_atomic_replace'),
    'test_klp_livepatch: this has been live patched',
    'test_klp_atomic_replace: this has been live patched',
    ...DIS('test_klp_atomic_replace'),
    RM('test_klp_atomic_replace'),
    'test_klp_livepatch: this has been live patched',
    ...DIS('test_klp_livepatch'),
    RM('test_klp_livepatch'),
  ]);
});

test('atomic replace livepatch', async () => {
  t.start();
  await t.cmd('load', { name: 'test_klp_livepatch' });
  await showPatched();
  await t.cmd('load', { name: 'test_klp_syscall' });
  await t.cmd('load', { name: 'test_klp_callbacks_demo' });
  assert.equal((await t.cmd('tree')).patches.length, 3);
  await t.cmd('load', { name: 'test_klp_atomic_replace', params: 'replace=1' });
  const tree = await t.cmd('tree');
  assert.deepEqual(
    tree.patches.map((p: { name: string; stack_order: number }) => [p.name, p.stack_order]),
    [['test_klp_atomic_replace', 1]],
  );
  await showPatched();
  // The replaced patches were retired without being disabled: unloading them needs nothing more.
  await t.cmd('unload', { name: 'test_klp_callbacks_demo' });
  await t.cmd('unload', { name: 'test_klp_syscall' });
  await t.cmd('unload', { name: 'test_klp_livepatch' });
  assert.equal(await call(PROC, 'cmdline_proc_show'), 'original cmdline');
  assert.equal(await call(PROC, 'getpid'), 'original');
  await showPatched();
  await t.cmd('disable', { name: 'test_klp_atomic_replace' });
  await t.cmd('unload', { name: 'test_klp_atomic_replace' });
  const demoCbs = (w: string) => [`test_klp_callbacks_demo: ${w}_callback: process`];
  assert.deepEqual(t.transcript(), [
    LOAD('test_klp_livepatch'),
    ...EN('test_klp_livepatch'),
    'test_klp_livepatch: this has been live patched',
    LOAD('test_klp_syscall'),
    ...EN('test_klp_syscall'),
    LOAD('test_klp_callbacks_demo'),
    ...EN('test_klp_callbacks_demo', demoCbs('pre_patch'), demoCbs('post_patch')),
    LOAD('test_klp_atomic_replace', 'replace=1'),
    ...EN('test_klp_atomic_replace'),
    'test_klp_atomic_replace: this has been live patched',
    RM('test_klp_callbacks_demo'),
    RM('test_klp_syscall'),
    RM('test_klp_livepatch'),
    'test_klp_atomic_replace: this has been live patched',
    ...DIS('test_klp_atomic_replace'),
    RM('test_klp_atomic_replace'),
  ]);
});

const TARGET = encodeURIComponent('test-klp/mod_target.js');

test('module function patching', async () => {
  t.start();
  await t.cmd('require', { module: 'test-klp/mod_target.js' });
  assert.equal(await call(TARGET, 'test_klp_mod_target_show'), 'test_klp_mod_target: original output');
  await t.cmd('load', { name: 'test_klp_mod_patch' });
  assert.equal(
    await call(TARGET, 'test_klp_mod_target_show'),
    'test_klp_mod_patch: this has been live patched',
  );
  await t.cmd('disable', { name: 'test_klp_mod_patch' });
  await t.cmd('unload', { name: 'test_klp_mod_patch' });
  assert.equal(await call(TARGET, 'test_klp_mod_target_show'), 'test_klp_mod_target: original output');
  assert.deepEqual(t.transcript(), [
    '% require test-klp/mod_target.js',
    'test_klp_mod_target: test_klp_mod_target_init',
    LOAD('test_klp_mod_patch'),
    ...EN('test_klp_mod_patch'),
    ...DIS('test_klp_mod_patch'),
    RM('test_klp_mod_patch'),
  ]);
});

test('module function patching (livepatch first)', async () => {
  t.start();
  await t.cmd('load', { name: 'test_klp_mod_patch' });
  // A second instance of the module (re-required: a fresh copy with the same hash) is patched as it loads.
  await t.cmd('require', { module: 'test-klp/mod_target.js' });
  assert.equal(
    await call(TARGET, 'test_klp_mod_target_show'),
    'test_klp_mod_patch: this has been live patched',
  );
  const info = await t.cmd('info', { name: 'test_klp_mod_patch' });
  assert.equal(info.objects[0].instances.length, 2);
  await t.cmd('disable', { name: 'test_klp_mod_patch' });
  await t.cmd('unload', { name: 'test_klp_mod_patch' });
  assert.equal(await call(TARGET, 'test_klp_mod_target_show'), 'test_klp_mod_target: original output');
  assert.deepEqual(t.transcript(), [
    LOAD('test_klp_mod_patch'),
    ...EN('test_klp_mod_patch'),
    '% require test-klp/mod_target.js',
    "livepatch: applying patch 'test_klp_mod_patch' to loading module 'test-klp/mod_target.js'",
    'test_klp_mod_target: test_klp_mod_target_init',
    ...DIS('test_klp_mod_patch'),
    RM('test_klp_mod_patch'),
  ]);
});
