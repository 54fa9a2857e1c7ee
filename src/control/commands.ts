// The control commands: each maps one request onto the runtime, as the kernel's sysfs files map onto klp_*.
import type { KeyObject } from 'node:crypto';
import { LivepatchError } from '../errors.js';
import {
  checkPatchName,
  fixesOf,
  importPatch,
  removeQuietly,
  verifyReceived,
  type ReceivedPatch,
} from './patches.js';
import type { PatchOrigin, ProcessMeta, Command } from './protocol.js';
import type { Handler } from './server.js';
import { hasPatch, type ControlTarget, type TransitionView } from './target.js';
import { HOLD_MAIN, type ThreadCoordinator, type ThreadOp } from './threads.js';
import { sha256 } from './trust.js';

export interface ControlState {
  meta: ProcessMeta;
  /** The runtime, or null when it is not active here (commands then answer ENODEV). */
  target: () => ControlTarget | null;
  /** This process's private directory for received patch sources. */
  patchDir: string;
  /** Trusted keys in enforcing mode, else null. */
  keys: Map<string, KeyObject> | null;
  /** Where each loaded patch came from, by name. */
  origins: Map<string, PatchOrigin>;
  seq: number;
  /** The worker threads that replay this thread's changes; absent where there are none to coordinate. */
  threads?: ThreadCoordinator;
}

function need(state: ControlState): ControlTarget {
  const t = state.target();
  if (t === null) throw new LivepatchError('ENODEV', 'the livepatch runtime is not active in this process');
  return t;
}

function str(args: Record<string, unknown>, key: string): string {
  const v = args[key];
  if (typeof v !== 'string') throw new LivepatchError('EINVAL', `'${key}' must be a string`);
  return v;
}

/** `waitMs`: how long the client will wait; the worker threads are waited for no longer than that. */
function waitArg(args: Record<string, unknown>): number | undefined {
  const v = args['waitMs'];
  return typeof v === 'number' && v >= 0 ? v : undefined;
}

function nameArg(args: Record<string, unknown>): string {
  if (typeof args['name'] !== 'string') throw new LivepatchError('EINVAL', "'name' must be a string");
  return checkPatchName(args['name']);
}

/** The transition the CLI follows: this thread's own and the worker threads' still running. */
function transitionOf(state: ControlState, t: ControlTarget): TransitionView | null {
  const own = t.transition();
  return state.threads === undefined ? own : state.threads.transition(own);
}

/**
 * After a change that runs no patch code a worker could refuse (disable, force, remove): gives the worker threads a
 * moment to apply it, so that the transition the client then follows already includes theirs. Never more than a
 * second: this thread has made the change already, and a busy worker is reported by the transition.
 */
async function settled(state: ControlState, seq: number): Promise<void> {
  if (state.threads?.hasWorkers()) await state.threads.applied(seq, 1_000);
}

/** Tells the worker threads of a change made here; returns its sequence number (0 without workers). */
function record(state: ControlState, op: ThreadOp): number {
  return state.threads?.record(op) ?? 0;
}

/**
 * Holds this thread's transition open while `fn` runs: a task of the universe before the change, as an old request
 * would be. So a change that a worker thread then refuses is still reversible here, and an atomic-replace patch
 * has not yet dropped the patches it replaces (they are freed when its transition completes).
 */
async function holdingTransition<T>(t: ControlTarget, fn: () => Promise<T>): Promise<T> {
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  try {
    t.runTask?.(() => held, HOLD_MAIN);
  } catch {}
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * A change that runs a patch's code in every thread (load, enable): `change` makes it here and returns its
 * sequence number. With worker threads, this thread's transition is held until every worker has applied the change
 * (at most `waitMs`); when one refused it (a pre-patch callback vetoed there, the patch failed to import there), the
 * change is reversed in every thread before any transition completes — disabled, and for a load removed too — and
 * this throws with the thread's reason. The workers hold their transitions the same way until `commit`.
 */
async function inEveryThread(
  state: ControlState,
  t: ControlTarget,
  name: string,
  undo: 'remove' | 'disable',
  waitMs: number | undefined,
  change: () => Promise<number>,
): Promise<void> {
  const threads = state.threads;
  if (threads === undefined || !threads.hasWorkers()) {
    await change();
    return;
  }
  let seq = 0;
  let failed: { thread: number; message: string }[] = [];
  let left = '';
  await holdingTransition(t, async () => {
    try {
      seq = await change();
      failed = await threads.applied(seq, waitMs);
      if (failed.length > 0 && hasPatch(t, name) && (t.patchInfo(name) as { enabled?: boolean }).enabled) {
        // Reversed while the transition is held: nothing has completed yet, here or in a worker.
        await t.disablePatch(name);
        record(state, { op: 'disable', name });
      }
    } catch (e) {
      if (failed.length === 0) throw e;
      left = `; taking it back out failed too: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      if (seq !== 0) threads.commit(seq);
    }
  });
  if (failed.length === 0) return;
  if (undo === 'remove' && left === '') {
    try {
      // The reverse transition waits for this thread's old tasks like any other.
      if (t.transition() !== null) await t.waitForTransition(UNDO_WAIT_MS);
      if (t.transition() === null) {
        await t.removePatch(name);
        record(state, { op: 'remove', name });
        // The private copy stays until the process exits: a worker may be importing it still.
        state.origins.delete(name);
      } else left = `; it stays loaded and disabled here until its reverse transition ends (see 'list')`;
    } catch (e) {
      left = `; taking it back out failed too: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  const first = failed[0]!;
  throw new LivepatchError(
    'EINVAL',
    `patch '${name}' failed in worker thread ${first.thread}: ${first.message}` +
      (left === '' ? `; it was taken back out of every thread` : left),
    { name, threads: failed },
  );
}

/** How long a patch that failed in a worker thread waits for this thread's reverse transition before removal. */
const UNDO_WAIT_MS = 5_000;

/**
 * Loads one patch (received over the socket or read from the install directory): verify, import,
 * register and enable. Loading the same bytes again while that patch is loaded answers `already: true`.
 */
export async function loadReceived(
  state: ControlState,
  patch: ReceivedPatch,
  from: PatchOrigin['from'],
  waitMs?: number,
  /** A copy this process's cluster primary verified already (src/control/cluster.ts): its signer, or null. */
  verified?: { signedBy: string | null },
): Promise<{ name: string; already: boolean; transition: boolean; sha256: string }> {
  const t = need(state);
  const hash = sha256(patch.bytes);
  // Verified before anything else, even an answer of "already loaded": enforcing means no unsigned bytes are acted on.
  const signedBy = verified !== undefined ? verified.signedBy : verifyReceived(patch, state.keys);
  for (const o of state.origins.values()) {
    if (o.sha256 === hash && hasPatch(t, o.name)) {
      return {
        name: o.name,
        already: true,
        transition: transitionOf(state, t)?.patch === o.name,
        sha256: hash,
      };
    }
  }
  state.seq += 1;
  const imported = await importPatch(patch, state.patchDir, state.seq);
  const name = imported.spec.name;
  if (hasPatch(t, name)) {
    removeQuietly(imported.copy);
    throw new LivepatchError(
      'EEXIST',
      `patch '${name}' is already loaded with other contents; unload it first or give the new patch another name`,
      { name, loaded: state.origins.get(name)?.sha256 ?? null, sent: hash },
    );
  }
  const origin: PatchOrigin = {
    name,
    sha256: hash,
    file: imported.file,
    signedBy,
    loadedAt: new Date().toISOString(),
    from,
    fixes: fixesOf(patch.bytes),
  };
  await inEveryThread(state, t, name, 'remove', waitMs, async () => {
    try {
      await t.loadPatch(imported.spec, {
        source: hash,
        file: imported.file,
        ...(signedBy !== null ? { signedBy } : {}),
        fixes: origin.fixes,
      });
    } catch (e) {
      removeQuietly(imported.copy);
      throw e;
    }
    state.origins.set(name, origin);
    return record(state, {
      op: 'load',
      name,
      copy: imported.copy,
      file: imported.file,
      sha256: hash,
      signedBy,
      fixes: origin.fixes,
    });
  });
  return { name, already: false, transition: transitionOf(state, t)?.patch === name, sha256: hash };
}

/** The tree, with the worker threads (when there are any) and what each has applied. */
async function treeOf(state: ControlState): Promise<unknown> {
  const tree = (await need(state).tree()) as Record<string, unknown>;
  const threads = state.threads?.views() ?? [];
  return threads.length === 0 ? tree : { ...tree, threads };
}

export function makeHandlers(state: ControlState): Partial<Record<Command, Handler>> {
  return {
    meta: { mutating: false, run: () => state.meta },
    list: { mutating: false, run: () => treeOf(state) },
    symbols: {
      mutating: false,
      run: async () => {
        const own = (await need(state).symbols()) as { modules: { id: string; hash: string }[] };
        return state.threads === undefined ? own : state.threads.symbols(own);
      },
    },
    transition: { mutating: false, run: () => transitionOf(state, need(state)) },
    info: {
      mutating: false,
      run: async (args) => {
        const name = nameArg(args);
        const info = (await need(state).patchInfo(name)) as Record<string, unknown>;
        const own = { ...info, origin: state.origins.get(name) ?? null };
        return state.threads === undefined ? own : state.threads.info(own, name);
      },
    },
    status: {
      mutating: false,
      run: async () => {
        const t = need(state);
        return {
          meta: state.meta,
          tree: await treeOf(state),
          transition: transitionOf(state, t),
          origins: [...state.origins.values()],
          enforcing: state.keys !== null,
        };
      },
    },
    log: {
      mutating: false,
      run: (args) => need(state).log.lines(typeof args['since'] === 'number' ? args['since'] : undefined),
    },
    follow: {
      mutating: false,
      run: (_args, ctx) => {
        const unsubscribe = need(state).log.subscribe((line) => ctx.emit(line));
        ctx.onClose(() => {
          if (typeof unsubscribe === 'function') (unsubscribe as () => void)();
        });
        return { following: true };
      },
    },
    load: {
      mutating: true,
      run: async (args) => {
        const source = str(args, 'source');
        const sig = args['signature'];
        if (sig !== undefined && typeof sig !== 'string')
          throw new LivepatchError('EINVAL', "'signature' must be a string");
        const file = typeof args['file'] === 'string' ? args['file'] : 'patch.js';
        return loadReceived(
          state,
          { bytes: Buffer.from(source, 'base64'), file, signature: sig },
          'socket',
          waitArg(args),
        );
      },
    },
    enable: {
      mutating: true,
      run: async (args) => {
        const t = need(state);
        const name = nameArg(args);
        await inEveryThread(state, t, name, 'disable', waitArg(args), async () => {
          await t.enablePatch(name);
          return record(state, { op: 'enable', name });
        });
        return { ok: true };
      },
    },
    disable: {
      mutating: true,
      run: async (args) => {
        const name = nameArg(args);
        await need(state).disablePatch(name);
        await settled(state, record(state, { op: 'disable', name }));
        return { ok: true };
      },
    },
    force: {
      mutating: true,
      run: async (args) => {
        const t = need(state);
        const name = nameArg(args);
        try {
          await t.forcePatch(name);
        } catch (e) {
          // Done here, still running in a worker thread: the force is for that thread.
          if (t.transition() !== null || transitionOf(state, t)?.patch !== name) throw e;
        }
        await settled(state, record(state, { op: 'force', name }));
        return { ok: true };
      },
    },
    remove: {
      mutating: true,
      run: async (args) => {
        const name = nameArg(args);
        await need(state).removePatch(name);
        await settled(state, record(state, { op: 'remove', name }));
        state.origins.delete(name);
        return { ok: true };
      },
    },
    'sysfs-read': { mutating: false, run: (args) => need(state).sysfsRead(str(args, 'path')) },
    'sysfs-write': {
      mutating: true,
      run: async (args) => {
        const t = need(state);
        const path = str(args, 'path');
        const value = str(args, 'value');
        const rel = path.replace(/^\/?sys\/kernel\/livepatch\//, '');
        const name = rel.split('/')[0] ?? '';
        const write = async () => {
          await t.sysfsWrite(path, value);
          return record(state, { op: 'sysfs-write', name, path, value });
        };
        // `echo 1 > enabled` is an enable: every thread or none, as the command.
        if (rel === `${name}/enabled` && value.trim() === '1')
          await inEveryThread(state, t, name, 'disable', undefined, write);
        else await settled(state, await write());
        return { ok: true };
      },
    },
  };
}
