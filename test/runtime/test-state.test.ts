// Port of the kernel's selftest test-state.sh: system states carried by cumulative patches, taken over
// from the patch being replaced, and the compatibility rule (versions never go down).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DIS, EN, LOAD, RM, startTarget, type Target } from './target.js';

const S1 = 'test_klp_state';
const S2 = 'test_klp_state2';
const S3 = 'test_klp_state3';
const cb = (p: string, ...lines: string[]) => lines.map((l) => `${p}: ${l}`);
const freshPre = (p: string) =>
  cb(p, 'pre_patch_callback: process', 'allocate_loglevel_state: allocating space to store console_loglevel');
const freshPost = (p: string) =>
  cb(p, 'post_patch_callback: process', 'fix_console_loglevel: fixing console_loglevel');
const takePre = (p: string) =>
  cb(
    p,
    'pre_patch_callback: process',
    'allocate_loglevel_state: space to store console_loglevel already allocated',
  );
const takePost = (p: string) =>
  cb(p, 'post_patch_callback: process', 'fix_console_loglevel: taking over the console_loglevel change');
const restore = (p: string) =>
  cb(p, 'pre_unpatch_callback: process', 'restore_console_loglevel: restoring console_loglevel');
const free = (p: string) =>
  cb(
    p,
    'post_unpatch_callback: process',
    'free_loglevel_state: freeing space for the stored console_loglevel',
  );

async function withTarget(fn: (t: Target) => Promise<void>): Promise<void> {
  const t = await startTarget();
  try {
    t.start();
    await fn(t);
  } finally {
    await t.close();
  }
}
const loglevel = async (t: Target) => (await t.cmd('global', { name: 'console_loglevel' })).value as number;

test('system state modification', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: S1 });
    assert.equal(await loglevel(t), 8);
    await t.cmd('disable', { name: S1 });
    assert.equal(await loglevel(t), 4);
    await t.cmd('unload', { name: S1 });
    assert.deepEqual(t.transcript(), [
      LOAD(S1),
      ...EN(S1, freshPre(S1), freshPost(S1)),
      ...DIS(S1, restore(S1), free(S1)),
      RM(S1),
    ]);
  }));

test('taking over system state modification', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: S1 });
    await t.cmd('load', { name: S2 });
    await t.cmd('unload', { name: S1 });
    assert.equal(await loglevel(t), 8);
    await t.cmd('disable', { name: S2 });
    assert.equal(await loglevel(t), 4, 'the state taken over is restored by the new patch');
    await t.cmd('unload', { name: S2 });
    assert.deepEqual(t.transcript(), [
      LOAD(S1),
      ...EN(S1, freshPre(S1), freshPost(S1)),
      LOAD(S2),
      ...EN(S2, takePre(S2), takePost(S2)),
      RM(S1),
      ...DIS(S2, restore(S2), free(S2)),
      RM(S2),
    ]);
  }));

test('compatible cumulative livepatches', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: S2 });
    await t.cmd('load', { name: S3 });
    await t.cmd('unload', { name: S2 });
    await t.cmd('load', { name: S2 });
    await t.cmd('disable', { name: S2 });
    await t.cmd('unload', { name: S2 });
    await t.cmd('unload', { name: S3 });
    assert.deepEqual(t.transcript(), [
      LOAD(S2),
      ...EN(S2, freshPre(S2), freshPost(S2)),
      LOAD(S3),
      ...EN(S3, takePre(S3), takePost(S3)),
      RM(S2),
      LOAD(S2),
      ...EN(S2, takePre(S2), takePost(S2)),
      ...DIS(S2, restore(S2), free(S2)),
      RM(S2),
      RM(S3),
    ]);
  }));

test('incompatible cumulative livepatches', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: S2 });
    const r = await t.cmd('load', { name: S1 });
    assert.equal(r.error, 'EINVAL');
    await t.cmd('disable', { name: S2 });
    await t.cmd('unload', { name: S2 });
    assert.deepEqual(t.transcript(), [
      LOAD(S2),
      ...EN(S2, freshPre(S2), freshPost(S2)),
      LOAD(S1),
      `livepatch: Livepatch patch (${S1}) is not compatible with the already installed livepatches.`,
      `livepatch load: ERROR: could not load patch '${S1}': EINVAL`,
      ...DIS(S2, restore(S2), free(S2)),
      RM(S2),
    ]);
  }));
