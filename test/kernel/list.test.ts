// Tests for `kernel list`: the tree as text and JSON, older kernels' missing files, and tasks blocking a transition.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeSystem, kernel } from './fake-system.js';

test('lists patches oldest first with objects, functions and the kernel 0/1 as booleans', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_b', stack_order: 2, replace: true });
  sys.addPatch({
    name: 'lp_a',
    stack_order: 1,
    objects: [
      { name: 'vmlinux', funcs: ['cmdline_proc_show,1', 'version_show,2'] },
      { name: 'nfsd', patched: false, funcs: ['nfsd_open,1'] },
    ],
  });
  const r = await kernel(['list', '--json', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  const { patches, transition, installed } = r.json();
  assert.deepEqual(
    patches.map((p: { name: string }) => p.name),
    ['lp_a', 'lp_b'],
  );
  assert.deepEqual(patches[0], {
    name: 'lp_a',
    enabled: true,
    transition: false,
    replace: false,
    stack_order: 1,
    objects: [
      { name: 'nfsd', patched: false, funcs: [{ name: 'nfsd_open', sympos: 1 }] },
      {
        name: 'vmlinux',
        patched: true,
        funcs: [
          { name: 'cmdline_proc_show', sympos: 1 },
          { name: 'version_show', sympos: 2 },
        ],
      },
    ],
  });
  assert.equal(patches[1].replace, true);
  assert.equal(transition, null);
  assert.deepEqual(installed, []);

  const text = await kernel(['list', ...sys.args]);
  assert.match(
    text.stdout,
    /^Loaded patch modules:\nlp_a \[enabled\] {2}replace=0 stack_order=1\n {2}nfsd \(not patched\)\n {4}nfsd_open,1\n/,
  );
  assert.match(text.stdout, /lp_b \[enabled\] {2}replace=1 stack_order=2/);
});

test('kernels before 6.11/6.13 have no replace or stack_order: null, shown as -', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({
    name: 'old_kernel',
    replace: null,
    stack_order: null,
    objects: [{ name: 'vmlinux', patched: null, funcs: ['f,1'] }],
  });
  const r = await kernel(['list', '--json', ...sys.args]);
  const [p] = r.json().patches;
  assert.equal(p.replace, null);
  assert.equal(p.stack_order, null);
  assert.equal(p.objects[0].patched, null);
  const text = await kernel(['list', ...sys.args]);
  assert.match(text.stdout, /old_kernel \[enabled\] {2}replace=- stack_order=-\n {2}vmlinux\n/);
});

test('during a transition lists the tasks not yet switched, thread by thread, with comm', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_slow', transition: true });
  sys.addTask({ pid: 1, comm: 'init', patch_state: 1 });
  sys.addTask({ pid: 42, comm: 'kworker/0:1', patch_state: 0 });
  sys.addTask({ pid: 300, comm: 'java', patch_state: 0, threads: [301, 302] });
  sys.write('proc/300/task/301/patch_state', '1\n');
  const r = await kernel(['list', '--json', ...sys.args]);
  const { transition, patches } = r.json();
  assert.equal(patches[0].transition, true);
  assert.deepEqual(transition, {
    patch: 'lp_slow',
    target: 'patched',
    tasks: [
      { pid: 42, tid: 42, comm: 'kworker/0:1', patch_state: 0 },
      { pid: 300, tid: 300, comm: 'java', patch_state: 0 },
      { pid: 300, tid: 302, comm: 'java', patch_state: 0 },
    ],
  });
  const text = await kernel(['list', ...sys.args]);
  assert.match(text.stdout, /lp_slow \[enabling\.\.\.\]/);
  assert.match(
    text.stdout,
    /Tasks not yet switched \(transition of 'lp_slow' to patched\):\n +42 kworker\/0:1\n +300 java\n +302 java \(thread of 300\)/,
  );
});

test('an unpatching transition waits for tasks still in the patched state', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_going', enabled: false, transition: true });
  sys.addTask({ pid: 7, comm: 'sshd', patch_state: 1 });
  sys.addTask({ pid: 8, comm: 'bash', patch_state: 0 });
  const { transition, patches } = (await kernel(['list', '--json', ...sys.args])).json();
  assert.equal(transition.target, 'unpatched');
  assert.deepEqual(
    transition.tasks.map((x: { pid: number }) => x.pid),
    [7],
  );
  assert.equal(patches[0].enabled, false);
});

test('an empty tree says so; a kernel without livepatch is ENODEV', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  const r = await kernel(['list', ...sys.args]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Loaded patch modules:\n {2}\(none\)/);

  const bare = new FakeSystem({ livepatch: false });
  t.after(bare.cleanup);
  const e = await kernel(['list', '--json', ...bare.args]);
  assert.equal(e.code, 1);
  assert.equal(e.json().error.code, 'ENODEV');
  assert.match(
    e.json().error.message,
    /this kernel has no livepatch support: '.*\/kernel\/livepatch' is missing \(needs CONFIG_LIVEPATCH=y\)/,
  );
});
