// Yarn Plug'n'Play for `livepatch cache warm`: a PnP project has no node_modules. Its packages are zip archives
// that Node reads through the fs that `.pnp.cjs` patches, and their locations come from its resolution API. A start
// runs under it (`node -r ./.pnp.cjs`), so the warm has to see the tree the same way.
import { existsSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { dirname, join } from 'node:path';

/** The part of Yarn's `pnpapi` the warm uses. */
export interface PnpApi {
  /** The directory of the package `name` as required from `issuer` (a path ending in '/' for a directory). */
  resolveToUnqualified(request: string, issuer: string): string | null;
}

interface PnpModule extends PnpApi {
  setup(): void;
}

/** The `.pnp.cjs` of the Yarn project holding `dir` (the nearest one going up), or undefined. */
export function findPnp(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const file = join(d, '.pnp.cjs');
    if (existsSync(file)) return file;
    if (dirname(d) === d) return undefined;
  }
}

/**
 * Sets up the project's `.pnp.cjs` in this thread (once: a thread already under it, as with `yarn livepatch` or
 * `node -r ./.pnp.cjs`, keeps its own) and returns its API. From then on this thread's fs reads inside the
 * project's zip archives, as the service's will.
 */
export function setupPnp(file: string): PnpApi {
  const require = createRequire(file);
  if (process.versions['pnp'] !== undefined) return require('pnpapi') as PnpApi;
  const api = require(file) as PnpModule;
  api.setup();
  // It patches the methods of `fs` itself; ES modules imported their names before, and see them only after this.
  syncBuiltinESMExports();
  return api;
}
