// The slot ABI shared by instrumented code and the runtime (docs/internals/abi.md). Types only, and two constants.

export const ABI_VERSION = 3;
/** Registrations of these ABI versions are driven by this runtime (1: symbols always inline, bindings an object). */
export const ABI_ACCEPTED: readonly number[] = [1, 2, 3];
export const REGISTRY_KEY: unique symbol = Symbol.for('livepatch.registry') as never;
/**
 * ABI 3: the global name instrumented code reads the registry by. A module may declare its own `Symbol`,
 * `globalThis`, `Reflect` or `Object` (lodash's standalone packages start with `var Symbol = root.Symbol`), which
 * the header would then read instead of the global; no module can declare `__lp$registry` (abi.md §1).
 */
export const REGISTRY_GLOBAL = '__lp$registry';

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
  /** JSON of a SymbolTable (src/instrument/types.ts), parsed lazily; absent when `symbolsKey` names it instead. */
  symbols?: string;
  /** The key the loader handed the table to the registry under (`Registry.provideSymbols`). ABI 2. */
  symbolsKey?: string;
  /** ABI 2: makes the accessor object over the module's top-level bindings, on first use. ABI 1: the object. */
  bindings: (() => Record<string, unknown>) | Record<string, unknown>;
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
   * Where to find the symbol table of code instrumented with `symbolsKey: key`: `read()` returns its JSON, or
   * undefined when it cannot (then the module lists as not patchable). Called by the loader before the code runs;
   * `read` is called only when something asks for that module's symbols. ABI 2.
   */
  provideSymbols(key: string, read: () => string | undefined): void;
  /** ABI 3: `Reflect.construct`, for a patched constructor's forward (abi.md §2): the module may shadow `Reflect`. */
  construct: typeof Reflect.construct;
  /**
   * ABI 3: one object of accessors over a big module's several slot objects (abi.md §1), made here rather than in
   * the header, which would need the module's `Object`.
   */
  slotFacade(objects: Slots[]): Slots;
  /**
   * The runtime that owns this registry, once created (src/runtime/index.ts `getRuntime`). A second copy of
   * livepatch in the process (e.g. the one a patch module imports) reaches it here: `task()` runs through
   * its `runTask(fn, label)`. Absent until the runtime exists.
   */
  runtime?: unknown;
}
