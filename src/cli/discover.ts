// Finding instrumented processes: the metadata files in the control directory, stale ones cleaned up.
import { readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient } from '../control/client.js';
import { controlDir, metaPath, privatePatchDir, socketPath } from '../control/paths.js';
import type { ProcessMeta } from '../control/protocol.js';
import { LivepatchError } from '../errors.js';
import { UsageError, type Options } from './args.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function removeStale(dir: string, pid: number): void {
  for (const f of [socketPath(dir, pid), metaPath(dir, pid)]) {
    try {
      unlinkSync(f);
    } catch {}
  }
  try {
    rmSync(privatePatchDir(dir, pid), { recursive: true, force: true });
  } catch {}
}

/**
 * The processes with a control socket in this user's control directory, by pid. Entries whose process is
 * gone are removed (a process killed by a signal cannot clean up after itself).
 */
export function discover(dir = controlDir()): ProcessMeta[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: ProcessMeta[] = [];
  for (const f of names) {
    const m = /^([0-9]+)\.(json|sock)$/.exec(f);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (!isAlive(pid)) {
      removeStale(dir, pid);
      continue;
    }
    if (m[2] !== 'json') continue;
    try {
      const meta = JSON.parse(readFileSync(join(dir, f), 'utf8')) as ProcessMeta;
      if (meta.pid === pid) out.push(meta);
    } catch {}
  }
  return out.sort((a, b) => a.pid - b.pid);
}

export interface Target {
  pid: number;
  name: string;
  meta: ProcessMeta | undefined;
  socket: string;
}

/**
 * The processes a command acts on: `--pid` (repeatable), `--name`, `--all`; with none of them, the only
 * running process if `implicit` allows it. Throws UsageError when the choice is missing or ambiguous, and
 * LivepatchError ENOENT when a named process is not there.
 */
export function selectTargets(o: Options, implicit: boolean, dir = controlDir()): Target[] {
  const procs = discover(dir);
  const toTarget = (m: ProcessMeta): Target => ({
    pid: m.pid,
    name: m.name,
    meta: m,
    socket: socketPath(dir, m.pid),
  });
  if (o.pid.length > 0) {
    return o.pid.map((pid) => {
      const m = procs.find((p) => p.pid === pid);
      if (m === undefined)
        throw new LivepatchError(
          'ENOENT',
          isAlive(pid)
            ? `process ${pid} has no livepatch control socket (was it started with 'livepatch run' or 'node --import livepatch/register'?)`
            : `no process ${pid}`,
          { pid },
        );
      return toTarget(m);
    });
  }
  if (o.name !== undefined) {
    const named = procs.filter((p) => p.name === o.name);
    if (named.length === 0) throw new LivepatchError('ENOENT', `no livepatch process named '${o.name}'`);
    if (named.length > 1 && !o.all)
      throw new UsageError(
        `${named.length} processes are named '${o.name}' (${named.map((p) => p.pid).join(', ')}): add --all or choose one with --pid`,
      );
    return named.map(toTarget);
  }
  if (o.all) return procs.map(toTarget);
  if (implicit && procs.length === 1) return procs.map(toTarget);
  if (procs.length === 0)
    throw new LivepatchError('ENOENT', "no livepatch process is running (see 'livepatch ps')");
  throw new UsageError(
    `choose a process with --pid, --name or --all (running: ${procs.map((p) => `${p.pid} ${p.name}`).join(', ')})`,
  );
}

export function connectTarget(t: Target, timeoutMs = 5000): Promise<ControlClient> {
  return ControlClient.connect(t.socket, timeoutMs);
}
