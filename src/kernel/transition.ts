// Following a kernel transition from user space: poll sysfs until it ends, report progress, name who blocks it.
import { setTimeout as sleep } from 'node:timers/promises';
import { pendingTasks, type KernelTask } from './tasks.js';
import { readPatch, type KernelPaths, type KernelPatch } from './sysfs.js';

export type TransitionOutcome =
  /** transition reads 0 and the patch is still there (enabled, or reversed back to enabled). */
  | 'complete'
  /** the patch left the tree: it was disabled (or its enable failed) and the kernel freed it. */
  | 'gone'
  /** the deadline passed with the transition still running. */
  | 'timeout';

export interface TransitionResult {
  outcome: TransitionOutcome;
  /** The patch as last read (null when gone). */
  patch: KernelPatch | null;
  /** Tasks not yet switched when the wait ended (only for 'timeout'). */
  pending: KernelTask[];
  ms: number;
}

export interface WaitOptions {
  timeoutMs: number;
  pollMs: number;
  /** Also wait for the patch directory to vanish once an unpatching transition completes (disable, unload). */
  untilGone: boolean;
  /** Called with a progress line when the number of waiting tasks changes, and every few seconds. */
  progress?: (line: string) => void;
}

function secs(ms: number): string {
  return ms < 10_000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));
}

/** How often to repeat an unchanged progress line: the kernel itself retries about once a second. */
const PROGRESS_EVERY_MS = 5_000;

/**
 * Waits for patch `name` to end its transition. Never throws for "not yet": a timeout is an outcome, so the
 * caller decides between reporting it (exit 3), reversing, or forcing.
 */
export async function waitForTransition(
  paths: KernelPaths,
  name: string,
  opts: WaitOptions,
): Promise<TransitionResult> {
  const start = Date.now();
  let lastCount = -1;
  let lastLine = 0;
  for (;;) {
    const patch = readPatch(paths, name);
    const ms = Date.now() - start;
    if (patch === null) return { outcome: 'gone', patch: null, pending: [], ms };
    if (!patch.transition && !(opts.untilGone && !patch.enabled)) {
      return { outcome: 'complete', patch, pending: [], ms };
    }
    const pending = patch.transition ? pendingTasks(paths, patch.enabled ? 1 : 0) : [];
    if (ms >= opts.timeoutMs) return { outcome: 'timeout', patch, pending, ms };
    if (
      opts.progress &&
      patch.transition &&
      (pending.length !== lastCount || ms - lastLine >= PROGRESS_EVERY_MS)
    ) {
      const direction = patch.enabled ? 'patching' : 'unpatching';
      // Idle tasks (swapper/N) are not in /proc, and the kernel retries about once a second: a transition can
      // be open with no listed task.
      const who =
        pending.length > 0 ? `${pending.length} task(s) not yet switched` : 'no task in /proc pending yet';
      opts.progress(
        `'${name}': waiting for the ${direction} transition, ${who} (${secs(ms)}s of ${secs(opts.timeoutMs)}s)`,
      );
      lastCount = pending.length;
      lastLine = ms;
    }
    await sleep(opts.pollMs);
  }
}
