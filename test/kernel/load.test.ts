// Tests for `kernel load`: the checks before insmod, the transition it starts, a stall, and its reversal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { FakeSystem, kernel, livepatchModinfo, makeModule } from './fake-system.js';

function moduleFile(sys: FakeSystem, name: string, bytes = makeModule(livepatchModinfo(name))): string {
  const file = sys.path(`${name.replace(/_/g, '-')}.ko`);
  writeFileSync(file, bytes);
  return file;
}

test('loads a patch whose transition completes at once', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  const file = moduleFile(sys, 'livepatch_cmdline');
  const r = await kernel(['load', file, ...sys.args, ...sys.modTools()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^loading patch module: .*livepatch-cmdline\.ko\nwaiting \(up to 60 seconds\)/);
  assert.match(r.stdout, /^'livepatch_cmdline': patching complete \(\d+\.\ds\)\n$/);
  assert.ok(sys.exists('sys/kernel/livepatch/livepatch_cmdline/enabled'));
});

test('follows a running transition to its end and reports the patch as JSON', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addTask({ pid: 1, comm: 'init' });
  sys.addTask({ pid: 99, comm: 'busy' });
  sys.startKernel();
  const file = moduleFile(sys, 'lp_json');
  const r = await kernel(['load', file, '--json', ...sys.args, ...sys.modTools({ transition: true })]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.json();
  assert.equal(out.name, 'lp_json');
  assert.equal(out.result, 'complete');
  assert.equal(out.patch.enabled, true);
  assert.equal(out.patch.transition, false);
  assert.equal(sys.read('proc/99/patch_state'), '-1\n');
});

test('a stalled transition exits 3 and shows the blocking tasks with their kernel stacks', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addTask({ pid: 1, comm: 'init' });
  sys.addTask({
    pid: 4242,
    comm: 'stuck-reader',
    stack: ['[<0>] cmdline_proc_show+0x10/0x40', '[<0>] seq_read_iter+0x11f/0x4b0'],
  });
  sys.startKernel([4242]);
  const file = moduleFile(sys, 'lp_stall');
  const r = await kernel([
    'load',
    file,
    '--timeout',
    '0.3',
    ...sys.args,
    ...sys.modTools({ transition: true }),
  ]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /'lp_stall': waiting for the patching transition, 1 task\(s\) not yet switched/);
  assert.match(
    r.stdout,
    /'lp_stall': the patching transition did not finish in \d+\.\ds; 1 task\(s\) not yet switched:\n +4242 stuck-reader\n +\[<0>\] cmdline_proc_show\+0x10\/0x40\n +\[<0>\] seq_read_iter/,
  );
  assert.match(
    r.stdout,
    /to reverse it: {2}livepatch kernel disable lp_stall {3}\(or rerun with --reverse-on-timeout\)/,
  );
  assert.match(r.stdout, /to force it: {4}livepatch kernel force lp_stall/);
  assert.equal(sys.read('sys/kernel/livepatch/lp_stall/transition'), '1\n');
});

test('--reverse-on-timeout reverses a stalled load, frees the patch and removes its module', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addTask({ pid: 4242, comm: 'stuck-reader' });
  sys.startKernel([4242]);
  const file = moduleFile(sys, 'lp_reverse');
  const r = await kernel([
    'load',
    file,
    '--timeout',
    '0.3',
    '--reverse-on-timeout',
    '--json',
    ...sys.args,
    ...sys.modTools({ transition: true }),
  ]);
  assert.equal(r.code, 1, r.stderr);
  const out = r.json();
  assert.equal(out.result, 'reversed');
  assert.equal(out.removed, true);
  assert.deepEqual(
    out.blocking.map((b: { pid: number; comm: string }) => [b.pid, b.comm]),
    [[4242, 'stuck-reader']],
  );
  assert.match(r.stderr, /'lp_reverse': reversing transition from patching to unpatching/);
  assert.equal(sys.exists('sys/kernel/livepatch/lp_reverse'), false);
  assert.equal(sys.exists('sys/module/lp_reverse'), false);
});

test('a patch freed while its load is followed (reversed by someone else) fails the load', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addTask({ pid: 4242, comm: 'stuck-reader' });
  sys.startKernel([4242]);
  const file = moduleFile(sys, 'lp_freed');
  // Someone else reverses it once the command follows the transition: the fake kernel then frees the patch.
  const r = await kernel(['load', file, ...sys.args, ...sys.modTools({ transition: true })], (stderr) => {
    if (stderr.includes('waiting (up to') && sys.read('sys/kernel/livepatch/lp_freed/enabled') === '1\n') {
      sys.write('sys/kernel/livepatch/lp_freed/enabled', '0\n');
    }
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /'lp_freed': the patch was freed before its patching transition completed/);
});

const refusals: {
  what: string;
  setup: (sys: FakeSystem) => string[];
  system?: ConstructorParameters<typeof FakeSystem>[0];
  module?: () => Buffer;
  code: string;
  message: RegExp;
}[] = [
  {
    what: 'a kernel without livepatch',
    system: { livepatch: false },
    setup: () => [],
    code: 'ENODEV',
    message: /this kernel has no livepatch support/,
  },
  {
    what: 'a module that is not a livepatch module',
    module: () =>
      makeModule([
        ['name', 'lp_plain'],
        ['vermagic', '6.1.0-56-amd64 SMP'],
      ]),
    setup: () => [],
    code: 'EINVAL',
    message: /'.*' is not a livepatch module: its modinfo has no 'livepatch: Y'/,
  },
  {
    what: 'a module built for another kernel',
    module: () => makeModule(livepatchModinfo('lp_plain', '6.1.0-40-amd64')),
    setup: () => [],
    code: 'EINVAL',
    message: /invalid module version '6\.1\.0-40-amd64' for kernel '6\.1\.0-56-amd64'/,
  },
  {
    what: 'a user without CAP_SYS_MODULE',
    system: { capEff: '0000000000000000' },
    setup: () => [],
    code: 'EPERM',
    message: /needs root \(CAP_SYS_MODULE\)/,
  },
  {
    what: 'an unsigned module on a kernel that enforces signatures',
    system: { sigEnforce: true },
    setup: () => [],
    code: 'EPERM',
    message: /is not signed and this kernel only loads signed modules/,
  },
  {
    what: 'a patch that is already loaded',
    setup: (sys) => (sys.addPatch({ name: 'lp_plain' }), []),
    code: 'EEXIST',
    message: /patch 'lp_plain' is already loaded/,
  },
  {
    what: 'a disabled patch whose module is still loaded',
    setup: (sys) => (sys.addModule('lp_plain', 0), []),
    code: 'EEXIST',
    message:
      /module 'lp_plain' is loaded but its patch was disabled; remove it first: livepatch kernel unload lp_plain/,
  },
  {
    what: 'another patch in transition',
    setup: (sys) => (sys.addPatch({ name: 'lp_other', transition: true }), []),
    code: 'EBUSY',
    message: /patch 'lp_other' is in transition; wait for it or reverse it before loading 'lp_plain'/,
  },
  {
    what: 'insmod failing with EBUSY',
    setup: (sys) => sys.modTools({ error: 'Device or resource busy' }),
    code: 'EBUSY',
    message: /another patch is in transition, or a function it patches is claimed by another ftrace user/,
  },
  {
    what: 'insmod failing with EINVAL',
    setup: (sys) => sys.modTools({ error: 'Invalid parameters' }),
    code: 'EINVAL',
    message: /not compatible with the installed patches, or a function it patches is missing/,
  },
  {
    what: 'insmod failing on the signature',
    setup: (sys) => sys.modTools({ error: 'Key was rejected by service' }),
    code: 'EPERM',
    message: /signature is missing or not trusted/,
  },
  {
    what: 'a missing insmod',
    setup: () => ['--insmod', '/nonexistent/insmod'],
    code: 'EINVAL',
    message: /insmod failed for 'lp_plain': command '\/nonexistent\/insmod' not found/,
  },
];
for (const c of refusals) {
  test(`load refuses ${c.what}: ${c.code}`, async (t) => {
    const sys = new FakeSystem(c.system);
    t.after(sys.cleanup);
    const file = moduleFile(sys, 'lp_plain', c.module?.());
    const extra = c.setup(sys);
    const tools = extra.length > 0 ? extra : sys.modTools();
    const r = await kernel(['load', file, '--json', ...sys.args, ...tools]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const { error } = r.json();
    assert.equal(error.code, c.code, error.message);
    assert.match(error.message, c.message);
  });
}

test('without --json an error is one line on stderr in the kernel wording', async (t) => {
  const sys = new FakeSystem({ release: '6.12.0-1-amd64' });
  t.after(sys.cleanup);
  const r = await kernel(['load', moduleFile(sys, 'lp_x'), ...sys.args, ...sys.modTools()]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(
    r.stderr,
    /^livepatch kernel: error: invalid module version '6\.1\.0-56-amd64' for kernel '6\.12\.0-1-amd64': .* was built for another kernel\n$/,
  );
});
