// Port of the kernel's selftest test-sysfs.sh: the sysfs-style tree's files, values and access rules, plus
// the kernel's boolean parsing and write errors as a table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBool } from '../../src/runtime/sysfs.js';
import { DIS, EN, LOAD, RM, startTarget, type Target } from './target.js';

async function withTarget(fn: (t: Target) => Promise<void>): Promise<void> {
  const t = await startTarget();
  try {
    t.start();
    await fn(t);
  } finally {
    await t.close();
  }
}
const read = async (t: Target, path: string) => {
  const r = await t.cmd('read', { path });
  return r.error !== undefined ? `error ${r.error}` : (r.value as string);
};

test('kstrtobool', () => {
  const cases: [string, boolean | 'EINVAL'][] = [
    ['1', true],
    ['y', true],
    ['Y', true],
    ['t', true],
    ['T', true],
    ['10', true],
    ['yes please', true],
    ['0', false],
    ['n', false],
    ['N', false],
    ['f', false],
    ['F', false],
    ['0\n', false],
    ['on', true],
    ['ON', true],
    ['of', false],
    ['off', false],
    ['Off', false],
    ['', 'EINVAL'],
    ['2', 'EINVAL'],
    ['x', 'EINVAL'],
    ['o', 'EINVAL'],
    ['ox', 'EINVAL'],
    [' 1', 'EINVAL'],
  ];
  for (const [input, want] of cases) {
    if (want === 'EINVAL') assert.throws(() => parseBool(input), { code: 'EINVAL' }, JSON.stringify(input));
    else assert.equal(parseBool(input), want, JSON.stringify(input));
  }
});

test('sysfs test', () =>
  withTarget(async (t) => {
    const P = 'test_klp_livepatch';
    await t.cmd('load', { name: P });
    assert.equal(await read(t, `${P}/enabled`), '1\n');
    assert.equal(await read(t, `${P}/force`), 'error EPERM', 'force is write-only');
    assert.equal(await read(t, `${P}/replace`), '0\n');
    assert.equal(await read(t, `${P}/stack_order`), '1\n');
    assert.equal(await read(t, `${P}/transition`), '0\n');
    assert.equal(await read(t, `${P}/test-klp/proc.js/patched`), '1\n');
    assert.equal(await read(t, `${P}/test-klp/proc.js/cmdline_proc_show,1`), '');
    assert.equal(await read(t, `${P}/nope`), 'error ENOENT');
    // Writes with the kernel's rules, none of which changes anything.
    for (const [path, value, code] of [
      [`${P}/transition`, '1', 'EPERM'],
      [`${P}/replace`, '1', 'EPERM'],
      [`${P}/stack_order`, '2', 'EPERM'],
      [`${P}/enabled`, 'x', 'EINVAL'],
      [`${P}/enabled`, '1', 'EINVAL'],
      [`${P}/force`, '1', 'EINVAL'],
      [`${P}/force`, 'maybe', 'EINVAL'],
    ] as const)
      assert.equal((await t.cmd('write', { path, value })).error, code, `${value} > ${path}`);
    assert.equal(
      (await t.cmd('write', { path: `${P}/force`, value: '0' })).error,
      undefined,
      'force 0 is a no-op',
    );
    t.start();
    await t.cmd('write', { path: `${P}/enabled`, value: '0' });
    await t.cmd('wait');
    assert.equal(await read(t, `${P}/enabled`), '0\n');
    assert.equal(await read(t, `${P}/test-klp/proc.js/patched`), '0\n');
    await t.cmd('unload', { name: P });
    assert.deepEqual(t.transcript(), [`% echo 0 > ${P}/enabled`, ...DIS(P).slice(1), RM(P)]);
  }));

test('sysfs test object/patched', () =>
  withTarget(async (t) => {
    const P = 'test_klp_callbacks_demo';
    const M = 'test-klp/callbacks_mod.js';
    await t.cmd('load', { name: P });
    assert.equal(await read(t, `${P}/${M}/patched`), '0\n');
    await t.cmd('require', { module: M });
    assert.equal(await read(t, `${P}/${M}/patched`), '1\n');
    await t.cmd('disable', { name: P });
    assert.equal(await read(t, `${P}/${M}/patched`), '0\n');
    await t.cmd('unload', { name: P });
    const cb = (w: string, objs: string[]) => objs.map((o) => `${P}: ${w}_callback: ${o}`);
    assert.deepEqual(t.transcript(), [
      LOAD(P),
      ...EN(P, cb('pre_patch', ['process']), cb('post_patch', ['process'])),
      `% require ${M}`,
      `livepatch: applying patch '${P}' to loading module '${M}'`,
      ...cb('pre_patch', [`${M} -> [coming]`]),
      ...cb('post_patch', [`${M} -> [coming]`]),
      'test_klp_callbacks_mod: test_klp_callbacks_mod_init',
      ...DIS(
        P,
        cb('pre_unpatch', ['process', `${M} -> [live]`]),
        cb('post_unpatch', ['process', `${M} -> [live]`]),
      ),
      RM(P),
    ]);
  }));

for (const replace of [1, 0])
  test(`sysfs test replace ${replace ? 'enabled' : 'disabled'}`, () =>
    withTarget(async (t) => {
      const P = 'test_klp_atomic_replace';
      await t.cmd('load', { name: P, params: `replace=${replace}` });
      assert.equal(await read(t, `${P}/replace`), `${replace}\n`);
      await t.cmd('disable', { name: P });
      await t.cmd('unload', { name: P });
      assert.deepEqual(t.transcript(), [LOAD(P, `replace=${replace}`), ...EN(P), ...DIS(P), RM(P)]);
    }));

test('sysfs test stack_order value', () =>
  withTarget(async (t) => {
    const [A, D, S] = ['test_klp_livepatch', 'test_klp_callbacks_demo', 'test_klp_syscall'];
    for (const p of [A, D, S]) await t.cmd('load', { name: p });
    assert.deepEqual(await Promise.all([A, D, S].map((p) => read(t, `${p}/stack_order`))), [
      '1\n',
      '2\n',
      '3\n',
    ]);
    await t.cmd('disable', { name: D });
    await t.cmd('unload', { name: D });
    assert.deepEqual(await Promise.all([A, S].map((p) => read(t, `${p}/stack_order`))), ['1\n', '2\n']);
    await t.cmd('disable', { name: S });
    await t.cmd('unload', { name: S });
    await t.cmd('disable', { name: A });
    await t.cmd('unload', { name: A });
    const cb = (w: string) => [`${D}: ${w}_callback: process`];
    assert.deepEqual(t.transcript(), [
      LOAD(A),
      ...EN(A),
      LOAD(D),
      ...EN(D, cb('pre_patch'), cb('post_patch')),
      LOAD(S),
      ...EN(S),
      ...DIS(D, cb('pre_unpatch'), cb('post_unpatch')),
      RM(D),
      ...DIS(S),
      RM(S),
      ...DIS(A),
      RM(A),
    ]);
  }));
