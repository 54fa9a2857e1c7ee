// Port of the kernel's selftest test-callbacks.sh: when each object callback runs, with the kernel's gating,
// for modules loaded before, after and during a patch's transition, asserting the exact log transcript.
// The module-going cases (3, 4 and the unloads of 8 and 9) have no counterpart: a Node.js module never unloads.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DIS, EN, LOAD, RM, startTarget, type Target } from './target.js';

const P = 'test_klp_callbacks_demo';
const P2 = 'test_klp_callbacks_demo2';
const M = 'test-klp/callbacks_mod.js';
const B = 'test-klp/callbacks_busy.js';
const cb = (patch: string, which: string, objs: string[]) =>
  objs.map((o) => `${patch}: ${which}_callback: ${o}`);
const live = (m: string) => `${m} -> [live]`;
const coming = (m: string) => `${m} -> [coming]`;
const M_INIT = 'test_klp_callbacks_mod: test_klp_callbacks_mod_init';

async function withTarget(fn: (t: Target) => Promise<void>): Promise<void> {
  const t = await startTarget();
  try {
    t.start();
    await fn(t);
  } finally {
    await t.close();
  }
}

test('target module before livepatch', () =>
  withTarget(async (t) => {
    await t.cmd('require', { module: M });
    await t.cmd('load', { name: P });
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P });
    const objs = ['process', live(M)];
    assert.deepEqual(t.transcript(), [
      `% require ${M}`,
      M_INIT,
      LOAD(P),
      ...EN(P, cb(P, 'pre_patch', objs), cb(P, 'post_patch', objs)),
      ...DIS(P, cb(P, 'pre_unpatch', objs), cb(P, 'post_unpatch', objs)),
      RM(P),
    ]);
  }));

test('module_coming notifier', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: P });
    await t.cmd('require', { module: M });
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P });
    assert.deepEqual(t.transcript(), [
      LOAD(P),
      ...EN(P, cb(P, 'pre_patch', ['process']), cb(P, 'post_patch', ['process'])),
      `% require ${M}`,
      `livepatch: applying patch '${P}' to loading module '${M}'`,
      ...cb(P, 'pre_patch', [coming(M)]),
      ...cb(P, 'post_patch', [coming(M)]),
      M_INIT,
      ...DIS(P, cb(P, 'pre_unpatch', ['process', live(M)]), cb(P, 'post_unpatch', ['process', live(M)])),
      RM(P),
    ]);
  }));

test('target module not present', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: P });
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P });
    assert.deepEqual(t.transcript(), [
      LOAD(P),
      ...EN(P, cb(P, 'pre_patch', ['process']), cb(P, 'post_patch', ['process'])),
      ...DIS(P, cb(P, 'pre_unpatch', ['process']), cb(P, 'post_unpatch', ['process'])),
      RM(P),
    ]);
    const tree = await t.cmd('tree');
    assert.deepEqual(tree.patches, []);
  }));

test('pre-patch callback -ENODEV', () =>
  withTarget(async (t) => {
    await t.cmd('require', { module: M });
    const r = await t.cmd('load', { name: P, params: 'pre_patch_ret=-19' });
    assert.equal(r.error, 'EVETO');
    assert.deepEqual((await t.cmd('tree')).patches, [], 'a failed load leaves nothing behind');
    assert.deepEqual(t.transcript(), [
      `% require ${M}`,
      M_INIT,
      LOAD(P, 'pre_patch_ret=-19'),
      `livepatch: enabling patch '${P}'`,
      `livepatch: '${P}': initializing patching transition`,
      `${P}: pre_patch_callback: process`,
      "livepatch: pre-patch callback failed for object 'process'",
      `livepatch: failed to enable patch '${P}'`,
      `livepatch: '${P}': canceling patching transition, going to unpatch`,
      `livepatch: '${P}': completing unpatching transition`,
      `livepatch: '${P}': unpatching complete`,
      `livepatch load: ERROR: could not load patch '${P}': EVETO`,
    ]);
  }));

test('module_coming + pre-patch callback -ENODEV', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: P });
    await t.cmd('setPrePatchRet', { value: -19 });
    const r = await t.cmd('require', { module: M });
    assert.equal(r.error, 'EVETO');
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P });
    assert.deepEqual(t.transcript(), [
      LOAD(P),
      ...EN(P, cb(P, 'pre_patch', ['process']), cb(P, 'post_patch', ['process'])),
      '% echo -19 > test_klp_callbacks_demo/parameters/pre_patch_ret',
      `% require ${M}`,
      `livepatch: applying patch '${P}' to loading module '${M}'`,
      ...cb(P, 'pre_patch', [coming(M)]),
      `livepatch: pre-patch callback failed for object '${M}'`,
      `livepatch: patch '${P}' failed for module '${M}', refusing to load module '${M}'`,
      `require: ERROR: could not load module '${M}': EVETO`,
      ...DIS(P, cb(P, 'pre_unpatch', ['process']), cb(P, 'post_unpatch', ['process'])),
      RM(P),
    ]);
  }));

test('multiple target modules', () =>
  withTarget(async (t) => {
    await t.cmd('require', { module: B, params: 'block_transition=N' });
    await t.cmd('load', { name: P });
    await t.cmd('require', { module: M });
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P });
    assert.deepEqual(t.transcript(), [
      `% require ${B} block_transition=N`,
      'test_klp_callbacks_busy: test_klp_callbacks_busy_init',
      'test_klp_callbacks_busy: busymod_work_func enter',
      'test_klp_callbacks_busy: busymod_work_func exit',
      LOAD(P),
      ...EN(P, cb(P, 'pre_patch', ['process', live(B)]), cb(P, 'post_patch', ['process', live(B)])),
      `% require ${M}`,
      `livepatch: applying patch '${P}' to loading module '${M}'`,
      ...cb(P, 'pre_patch', [coming(M)]),
      ...cb(P, 'post_patch', [coming(M)]),
      M_INIT,
      ...DIS(
        P,
        cb(P, 'pre_unpatch', ['process', live(M), live(B)]),
        cb(P, 'post_unpatch', ['process', live(M), live(B)]),
      ),
      RM(P),
    ]);
  }));

test('busy target module', () =>
  withTarget(async (t) => {
    await t.cmd('require', { module: B, params: 'block_transition=Y' });
    await t.cmd('load', { name: P, wait: false });
    assert.equal((await t.cmd('read', { path: `${P}/transition` })).value, '1\n');
    // The stalled task is reported: the busy module's work item, still in the unpatched universe.
    const tr = (await t.cmd('transition')).value;
    assert.equal(tr.patch, P);
    assert.equal(tr.target, 'patched');
    assert.deepEqual(
      tr.tasks.map((x: { kind: string; label: string }) => [x.kind, x.label]),
      [['task', 'busymod_work_func']],
    );
    assert.equal((await t.cmd('wait', { ms: 100 })).value, false, 'the transition cannot complete');
    await t.cmd('require', { module: M });
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P });
    await t.cmd('unblock');
    assert.deepEqual(t.transcript(), [
      `% require ${B} block_transition=Y`,
      'test_klp_callbacks_busy: test_klp_callbacks_busy_init',
      'test_klp_callbacks_busy: busymod_work_func enter',
      LOAD(P),
      `livepatch: enabling patch '${P}'`,
      `livepatch: '${P}': initializing patching transition`,
      ...cb(P, 'pre_patch', ['process', live(B)]),
      `livepatch: '${P}': starting patching transition`,
      `% require ${M}`,
      `livepatch: applying patch '${P}' to loading module '${M}'`,
      ...cb(P, 'pre_patch', [coming(M)]),
      M_INIT,
      `% livepatch disable ${P}`,
      `livepatch: '${P}': reversing transition from patching to unpatching`,
      `livepatch: '${P}': starting unpatching transition`,
      `livepatch: '${P}': completing unpatching transition`,
      ...cb(P, 'post_unpatch', ['process', live(M), live(B)]),
      `livepatch: '${P}': unpatching complete`,
      RM(P),
      '% unblock test-klp/callbacks_busy.js',
      'test_klp_callbacks_busy: busymod_work_func exit',
    ]);
  }));

test('multiple livepatches', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: P });
    await t.cmd('load', { name: P2 });
    await t.cmd('disable', { name: P2 });
    await t.cmd('disable', { name: P });
    await t.cmd('unload', { name: P2 });
    await t.cmd('unload', { name: P });
    const c = (p: string, w: string) => cb(p, w, ['process']);
    assert.deepEqual(t.transcript(), [
      LOAD(P),
      ...EN(P, c(P, 'pre_patch'), c(P, 'post_patch')),
      LOAD(P2),
      ...EN(P2, c(P2, 'pre_patch'), c(P2, 'post_patch')),
      ...DIS(P2, c(P2, 'pre_unpatch'), c(P2, 'post_unpatch')),
      ...DIS(P, c(P, 'pre_unpatch'), c(P, 'post_unpatch')),
      RM(P2),
      RM(P),
    ]);
  }));

test('atomic replace', () =>
  withTarget(async (t) => {
    await t.cmd('load', { name: P });
    await t.cmd('load', { name: P2, params: 'replace=1' });
    await t.cmd('disable', { name: P2 });
    await t.cmd('unload', { name: P2 });
    await t.cmd('unload', { name: P });
    const c = (p: string, w: string) => cb(p, w, ['process']);
    assert.deepEqual(t.transcript(), [
      LOAD(P),
      ...EN(P, c(P, 'pre_patch'), c(P, 'post_patch')),
      LOAD(P2, 'replace=1'),
      ...EN(P2, c(P2, 'pre_patch'), c(P2, 'post_patch')),
      ...DIS(P2, c(P2, 'pre_unpatch'), c(P2, 'post_unpatch')),
      RM(P2),
      RM(P),
    ]);
  }));
