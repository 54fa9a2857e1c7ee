// Running one CLI command against each chosen process: connect, act, print, and fold the exit codes.
import type { ControlClient } from '../control/client.js';
import { isLivepatchError } from '../errors.js';
import type { Options } from './args.js';
import { connectTarget, discover, selectTargets, type Target } from './discover.js';

/** DESIGN.md §6 exit codes. */
export const EXIT = { ok: 0, failed: 1, usage: 2, timeout: 3 } as const;

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal: progress lines are redrawn in place only then. */
  tty: boolean;
}

export const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
  tty: process.stderr.isTTY === true,
};

export interface Outcome {
  code: number;
  /** What `--json` prints for this process. */
  json: unknown;
}

export function errorJson(e: unknown): { error: { code: string; message: string; details?: unknown } } {
  if (isLivepatchError(e))
    return { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } };
  return { error: { code: 'EINVAL', message: e instanceof Error ? e.message : String(e) } };
}

/** An error is exit 1; exit 3 is only for a transition that did not finish, which is not an error answer. */
export function exitCodeOf(_e: unknown): number {
  return EXIT.failed;
}

/**
 * What a command does with cluster workers (src/control/cluster.ts). `change`: a primary's workers are changed after
 * it, and not when it refused the change (they start with what the primary has, so they must not get ahead of it);
 * a worker chosen alone is changed with a warning. `view`: a primary's workers are shown with it. `one`: only the
 * processes chosen.
 */
export type ClusterScope = 'change' | 'view' | 'one';

/**
 * Runs `fn` for each selected process, one after the other. `fn` prints its text (unless --json) and
 * returns its JSON. With one process, --json prints that JSON; with several, `{"processes":[{pid,name,...}]}`.
 * Returns the worst exit code (3 > 1 > 0).
 */
export async function eachTarget(
  o: Options,
  io: Io,
  implicit: boolean,
  fn: (client: ControlClient, target: Target, label: string) => Promise<Outcome>,
  scope: ClusterScope = 'one',
): Promise<number> {
  const targets = selectTargets(o, implicit, scope !== 'one');
  const many = targets.length > 1;
  let code: number = EXIT.ok;
  const results: { pid: number; name: string; result: unknown }[] = [];
  const refused = new Set<number>();
  if (scope === 'change') warnLoneWorkers(targets, io);
  for (const t of targets) {
    const label = many ? `pid ${t.pid} (${t.name}): ` : '';
    if (t.primary !== undefined && refused.has(t.primary)) {
      const message = `not changed: its cluster primary ${t.primary} refused the change, and its workers follow it`;
      if (!o.json) io.err(`livepatch: ${label}${message}`);
      results.push({ pid: t.pid, name: t.name, result: { error: { code: 'ECANCELED', message } } });
      if (code === EXIT.ok) code = EXIT.failed;
      continue;
    }
    let outcome: Outcome;
    let client: ControlClient | undefined;
    try {
      client = await connectTarget(t);
      outcome = await fn(client, t, label);
    } catch (e) {
      outcome = { code: exitCodeOf(e), json: errorJson(e) };
      if (!o.json)
        io.err(
          `livepatch: error: ${many || !client ? `pid ${t.pid} (${t.name}): ` : ''}${(e as Error).message}`,
        );
    } finally {
      client?.close();
    }
    if (outcome.code === EXIT.failed) refused.add(t.pid);
    if (outcome.code === EXIT.timeout || (outcome.code !== EXIT.ok && code === EXIT.ok)) code = outcome.code;
    results.push({ pid: t.pid, name: t.name, result: outcome.json });
  }
  if (o.json) io.out(JSON.stringify(many ? { processes: results } : (results[0]?.result ?? null)));
  return code;
}

/** A cluster worker changed without its primary: the only one changed, and its replacement will not be. */
function warnLoneWorkers(targets: Target[], io: Io): void {
  const chosen = new Set(targets.map((t) => t.pid));
  const live = new Set(discover().map((m) => m.pid));
  for (const t of targets) {
    const p = t.meta?.clusterPrimary;
    if (p === undefined || chosen.has(p) || !live.has(p)) continue;
    io.err(
      `livepatch: warning: pid ${t.pid} is a worker of cluster primary ${p}: only this worker is changed; the other ` +
        `workers, and a worker started in its place, have the primary's patches ('--pid ${p}' changes them all)`,
    );
  }
}
