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
import type { ControlTarget } from './target.js';
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

function nameArg(args: Record<string, unknown>): string {
  if (typeof args['name'] !== 'string') throw new LivepatchError('EINVAL', "'name' must be a string");
  return checkPatchName(args['name']);
}

/** True if the runtime still has a patch of that name. */
function isLoaded(t: ControlTarget, name: string): boolean {
  try {
    t.patchInfo(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads one patch (received over the socket or read from the install directory): verify, import,
 * register and enable. Loading the same bytes again while that patch is loaded answers `already: true`.
 */
export async function loadReceived(
  state: ControlState,
  patch: ReceivedPatch,
  from: PatchOrigin['from'],
): Promise<{ name: string; already: boolean; transition: boolean; sha256: string }> {
  const t = need(state);
  const hash = sha256(patch.bytes);
  // Verified before anything else, even an answer of "already loaded": enforcing means no unsigned bytes are acted on.
  const signedBy = verifyReceived(patch, state.keys);
  for (const o of state.origins.values()) {
    if (o.sha256 === hash && isLoaded(t, o.name)) {
      return { name: o.name, already: true, transition: t.transition()?.patch === o.name, sha256: hash };
    }
  }
  state.seq += 1;
  const imported = await importPatch(patch, state.patchDir, state.seq);
  const name = imported.spec.name;
  if (isLoaded(t, name)) {
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
  return { name, already: false, transition: t.transition()?.patch === name, sha256: hash };
}

export function makeHandlers(state: ControlState): Partial<Record<Command, Handler>> {
  return {
    meta: { mutating: false, run: () => state.meta },
    list: { mutating: false, run: () => need(state).tree() },
    symbols: { mutating: false, run: () => need(state).symbols() },
    transition: { mutating: false, run: () => need(state).transition() },
    info: {
      mutating: false,
      run: async (args) => {
        const name = nameArg(args);
        const info = await need(state).patchInfo(name);
        return { ...(info as object), origin: state.origins.get(name) ?? null };
      },
    },
    status: {
      mutating: false,
      run: async () => {
        const t = need(state);
        return {
          meta: state.meta,
          tree: await t.tree(),
          transition: t.transition(),
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
        return loadReceived(state, { bytes: Buffer.from(source, 'base64'), file, signature: sig }, 'socket');
      },
    },
    enable: {
      mutating: true,
      run: async (args) => (await need(state).enablePatch(nameArg(args))) ?? { ok: true },
    },
    disable: {
      mutating: true,
      run: async (args) => (await need(state).disablePatch(nameArg(args))) ?? { ok: true },
    },
    force: {
      mutating: true,
      run: async (args) => (await need(state).forcePatch(nameArg(args))) ?? { ok: true },
    },
    remove: {
      mutating: true,
      run: async (args) => {
        const name = nameArg(args);
        await need(state).removePatch(name);
        state.origins.delete(name);
        return { ok: true };
      },
    },
    'sysfs-read': { mutating: false, run: (args) => need(state).sysfsRead(str(args, 'path')) },
    'sysfs-write': {
      mutating: true,
      run: async (args) =>
        (await need(state).sysfsWrite(str(args, 'path'), str(args, 'value'))) ?? { ok: true },
    },
  };
}
