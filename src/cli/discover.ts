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
  /** Set on a cluster worker chosen with its primary (`--pid PRIMARY`): the primary's pid, acted on first. */
  primary?: number;
}

/**
 * Each chosen cluster primary followed by its workers (ProcessMeta.clusterPrimary), so that a command reaches the
 * whole service: the primary holds the patches its workers start with, and the workers serve. A worker chosen as
 * well is not chosen twice.
 */
function withWorkers(base: Target[], procs: ProcessMeta[], toTarget: (m: ProcessMeta) => Target): Target[] {
  const chosen = new Set(base.map((t) => t.pid));
  const seen = new Set<number>();
  const out: Target[] = [];
  for (const t of base) {
    const p = t.meta?.clusterPrimary;
    if (p !== undefined && chosen.has(p)) continue;
    if (seen.has(t.pid)) continue;
    seen.add(t.pid);
    out.push(t);
    for (const w of procs)
      if (w.clusterPrimary === t.pid && !seen.has(w.pid)) {
        seen.add(w.pid);
        out.push({ ...toTarget(w), primary: t.pid });
      }
  }
  return out;
}

/** The primary when `procs` are exactly one cluster primary and its workers, else undefined. */
function oneCluster(procs: ProcessMeta[]): ProcessMeta | undefined {
  const primaries = procs.filter(
    (p) => p.clusterPrimary === undefined || !procs.some((q) => q.pid === p.clusterPrimary),
  );
  if (primaries.length !== 1) return undefined;
  const primary = primaries[0]!;
  return procs.every((p) => p === primary || p.clusterPrimary === primary.pid) ? primary : undefined;
}

/**
 * The processes a command acts on: `--pid` (repeatable), `--name`, `--all`; with none of them, the only
 * running process (or cluster) if `implicit` allows it. With `clusters`, a cluster primary brings its workers
 * (withWorkers), and a name shared by one primary and its workers needs no `--all`. Throws UsageError when the
 * choice is missing or ambiguous, and LivepatchError ENOENT when a named process is not there.
 */
export function selectTargets(o: Options, implicit: boolean, clusters = false, dir = controlDir()): Target[] {
  const procs = discover(dir);
  const chosen = choose(o, implicit, clusters, dir, procs);
  return clusters ? withWorkers(chosen, procs, (m) => targetOf(dir, m)) : chosen;
}

function targetOf(dir: string, m: ProcessMeta): Target {
  return { pid: m.pid, name: m.name, meta: m, socket: socketPath(dir, m.pid) };
}

function choose(
  o: Options,
  implicit: boolean,
  clusters: boolean,
  dir: string,
  procs: ProcessMeta[],
): Target[] {
  const toTarget = (m: ProcessMeta): Target => targetOf(dir, m);
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
    const cluster = named.length > 1 ? oneCluster(named) : undefined;
    if (cluster !== undefined && clusters && !o.all) return [toTarget(cluster)];
    if (named.length > 1 && !o.all)
      throw new UsageError(
        `${named.length} processes are named '${o.name}' (${named.map((p) => p.pid).join(', ')})` +
          (cluster !== undefined ? `, cluster primary ${cluster.pid} and its workers` : '') +
          `: add --all or choose one with --pid`,
      );
    return named.map(toTarget);
  }
  if (o.all) return procs.map(toTarget);
  if (implicit && procs.length === 1) return procs.map(toTarget);
  const cluster = implicit && clusters && procs.length > 1 ? oneCluster(procs) : undefined;
  if (cluster !== undefined) return [toTarget(cluster)];
  if (procs.length === 0)
    throw new LivepatchError('ENOENT', "no livepatch process is running (see 'livepatch ps')");
  throw new UsageError(
    `choose a process with --pid, --name or --all (running: ${procs.map((p) => `${p.pid} ${p.name}`).join(', ')})`,
  );
}

export function connectTarget(t: Target, timeoutMs = 5000): Promise<ControlClient> {
  return ControlClient.connect(t.socket, timeoutMs);
}
