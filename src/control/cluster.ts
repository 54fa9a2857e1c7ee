// Cluster workers (node:cluster, and pm2's cluster mode, which uses it): each worker is a process of its own, with
// its own control socket, serving the requests. The service's patches are its primary's: a worker the primary forks
// (at start, or again after one died) takes the patches the primary has, as they are when it starts, before the
// app's code runs in it — as a CPU brought online runs the kernel's patched functions. The CLI sends every later
// change to the primary and then to each of its workers (src/cli/session.ts).
//
// A worker reads the primary's change log, the file its own worker threads would read (src/control/threads.ts), and
// applies each change through its own commands. The patch code comes from the copies in the primary's private
// directory: owned by this uid, mode 0700, as the process's own. What the primary checked (the signature, in
// enforcing mode) is what runs here.
import { lstatSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LivepatchError } from '../errors.js';
import type { ControlState } from './commands.js';
import { checkPrivateDir, checkTrustedFile, metaPath, privatePatchDir } from './paths.js';
import type { Handlers } from './server.js';
import type { LogEntry } from './threads.js';
import { logPath } from './threads.js';

/**
 * The pid of this process's cluster primary when this process is a cluster worker, else undefined. A worker always
 * has an IPC channel and has loaded node:cluster before any `--import` runs; a process without a channel pays nothing.
 */
export function clusterPrimaryPid(): number | undefined {
  if ((process as { channel?: unknown }).channel === undefined) return undefined;
  try {
    const cluster = process.getBuiltinModule('node:cluster') as unknown as { isWorker: boolean };
    return cluster.isWorker ? process.ppid : undefined;
  } catch {
    return undefined;
  }
}

/** True when the primary runs under livepatch in this control directory: then its patches are the service's. */
export function primaryIsLive(dir: string, primary: number): boolean {
  try {
    return lstatSync(metaPath(dir, primary)).isFile();
  } catch {
    return false;
  }
}

interface LogFile {
  head: number;
  ops: LogEntry[];
}

/** The primary's log, or null when it has made no change (nothing to take). Throws EPERM on a foreign directory. */
function readPrimaryLog(dir: string, primary: number): LogFile | null {
  const pdir = privatePatchDir(dir, primary);
  let text: string;
  try {
    text = readFileSync(logPath(dir, primary), 'utf8');
  } catch {
    return null;
  }
  checkPrivateDir(dir, lstatSync(dir));
  checkPrivateDir(pdir, lstatSync(pdir));
  const log = JSON.parse(text) as LogFile;
  if (log === null || typeof log !== 'object' || !Array.isArray(log.ops))
    throw new LivepatchError('EINVAL', `the change log of primary ${primary} is damaged`);
  return log;
}

/**
 * Applies the patches of cluster primary `primary` to this process: each change of its log, in order, through this
 * process's own commands (so this process's worker threads follow too). A change that fails here is reported in
 * the returned list and the others still apply; the app starts either way. Returns what was taken.
 */
export async function takePrimaryPatches(
  state: ControlState,
  handlers: Handlers,
  dir: string,
  primary: number,
): Promise<{ applied: number; failed: { name: string; op: string; message: string }[] }> {
  const log = readPrimaryLog(dir, primary);
  const failed: { name: string; op: string; message: string }[] = [];
  if (log === null) return { applied: 0, failed };
  const t = state.target();
  if (t === null) return { applied: 0, failed };
  const pdir = privatePatchDir(dir, primary);
  const { loadReceived } = await import('./commands.js');
  let applied = 0;
  for (const e of log.ops) {
    try {
      switch (e.op) {
        case 'load': {
          if (dirname(e.copy) !== pdir)
            throw new LivepatchError('EPERM', `'${e.copy}' is not in primary ${primary}'s patch directory`);
          checkTrustedFile(e.copy, lstatSync(e.copy));
          const bytes = readFileSync(e.copy);
          await loadReceived(state, { bytes, file: e.file }, 'primary', undefined, { signedBy: e.signedBy });
          break;
        }
        case 'enable':
        case 'disable':
        case 'remove':
          await handlers[e.op]!.run({ name: e.name }, NO_CONTEXT);
          break;
        case 'sysfs-write':
          await handlers['sysfs-write']!.run({ path: e.path, value: e.value }, NO_CONTEXT);
          break;
        case 'force':
          // A force completes a transition of the primary's; this process starts with none.
          continue;
      }
      applied += 1;
    } catch (err) {
      failed.push({ name: e.name, op: e.op, message: err instanceof Error ? err.message : String(err) });
    }
    // No task of the app runs yet: each transition completes at once, and the next change may follow.
    if (t.transition() !== null) await t.waitForTransition(5_000);
  }
  return { applied, failed };
}

const NO_CONTEXT = { emit: () => {}, onClose: () => {} };
