// What the loader offers the rest of livepatch in this process, on a global symbol (one loader per process, as
// register.ts ensures): today, resolving `livepatch` from a patch module while it is imported.
const LOADER_KEY = Symbol.for('livepatch.loader');

export interface LoaderHandle {
  /**
   * Until the returned function is called, `livepatch` (and `livepatch/register`) resolve to the running copy
   * from modules that cannot find it otherwise: a patch module imported from the control server's directory.
   */
  selfResolve(): () => void;
}

/** Claims the process's loader slot; returns the handle to fill in, or undefined when it was claimed before. */
export function claimLoader(): LoaderHandle | undefined {
  const g = globalThis as Record<symbol, unknown>;
  if (g[LOADER_KEY] !== undefined) return undefined;
  const handle: LoaderHandle = { selfResolve: () => () => {} };
  g[LOADER_KEY] = handle;
  return handle;
}

/** The loader of this process, if one was installed. */
export function loaderHandle(): LoaderHandle | undefined {
  const h = (globalThis as Record<symbol, unknown>)[LOADER_KEY] as Partial<LoaderHandle> | undefined;
  return typeof h?.selfResolve === 'function' ? (h as LoaderHandle) : undefined;
}
