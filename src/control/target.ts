// The narrow view of the runtime that the control server drives; the runtime's `getRuntime()` satisfies it.

/** A task still running in the old universe during a transition. */
export interface TaskView {
  id: number | string;
  kind: string;
  label: string;
  ageMs: number;
  entered?: unknown;
}

export interface TransitionView {
  patch: string;
  target: string;
  startedAt: number | string;
  tasks: TaskView[];
}

/**
 * Every method may throw a LivepatchError with a `code`; results may be plain values or promises.
 * The server awaits them all, so either shape works.
 */
export interface ControlTarget {
  loadPatch(spec: unknown, meta?: Record<string, unknown>): unknown;
  enablePatch(name: string): unknown;
  disablePatch(name: string): unknown;
  removePatch(name: string): unknown;
  forcePatch(name: string): unknown;
  waitForTransition(timeoutMs: number): Promise<boolean>;
  transition(): TransitionView | null;
  tree(): unknown;
  patchInfo(name: string): unknown;
  symbols(): unknown;
  log: {
    lines(since?: number): unknown;
    subscribe(fn: (line: unknown) => void): unknown;
  };
  sysfsRead(path: string): unknown;
  sysfsWrite(path: string, value: string): unknown;
  /** Runs fn as a task (ends when fn returns, or when the promise it returns settles). */
  runTask?<T>(fn: () => T, label?: string): T;
}

/** True if the runtime has a patch of that name. */
export function hasPatch(t: ControlTarget, name: string): boolean {
  try {
    t.patchInfo(name);
    return true;
  } catch {
    return false;
  }
}
