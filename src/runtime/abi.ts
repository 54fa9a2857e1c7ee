// The slot ABI shared by instrumented code and the runtime (docs/internals/abi.md). Types only, and two constants.

export const ABI_VERSION = 1;
export const REGISTRY_KEY: unique symbol = Symbol.for('livepatch.registry') as never;

/** The per-module slot object `__lp$m`: `f<N>` flags and `r<N>` dispatchers. */
export type Slots = Record<string, unknown>;

/** What `rN(self, scope)` is: returns the function to run instead, or undefined to run the original body. */
export type Dispatcher = (
  self: ((...args: unknown[]) => unknown) | undefined,
  scope: (() => Record<string, unknown>) | undefined,
) => ((...args: unknown[]) => unknown) | undefined;

export interface ModuleRegistration {
  abi: number;
  id: string;
  hash: string;
  file: string;
  format: 'module' | 'commonjs';
  slots: Slots;
  /** JSON of a SymbolTable (src/instrument/types.ts); parsed lazily. */
  symbols: string;
  bindings: Record<string, unknown>;
}

export interface ModuleNote {
  id: string;
  hash: string;
  file: string;
  status: 'failed' | 'skipped';
  reason: string;
}

export interface Registry {
  readonly abi: number;
  readonly version: string;
  registerModule(reg: ModuleRegistration): void;
  noteModule(note: ModuleNote): void;
  /**
   * The runtime that owns this registry, once created (src/runtime/index.ts `getRuntime`). A second copy of
   * livepatch in the process (e.g. the one a patch module imports) reaches it here: `task()` runs through
   * its `runTask(fn, label)`. Absent until the runtime exists.
   */
  runtime?: unknown;
}
