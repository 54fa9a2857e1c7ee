// Patch modules seen from the loader: how they are marked (never instrumented) and how they find `livepatch`.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The query that marks a patch module: `file:///…/fix.mjs?livepatch-patch` (a value, e.g. a load counter, may
 * follow to get a fresh module instance). A module imported with it is never instrumented.
 */
export const PATCH_QUERY = 'livepatch-patch';

/** The URL to `import()` a patch module at `file` with; `instance` distinguishes repeated loads of one file. */
export function patchModuleUrl(file: string, instance?: string | number): string {
  const url = pathToFileURL(file);
  url.searchParams.set(PATCH_QUERY, instance === undefined ? '' : String(instance));
  return url.href;
}

/** True when `url` carries the patch-module mark. */
export function isPatchUrl(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  return new URLSearchParams(url.slice(q + 1, url.includes('#', q) ? url.indexOf('#', q) : undefined)).has(
    PATCH_QUERY,
  );
}

/**
 * Where `livepatch` and `livepatch/register` point when normal resolution fails — a patch file kept outside
 * any project (e.g. in the control server's runtime directory) still finds the copy of livepatch that runs the
 * process. Returns undefined for every other specifier.
 */
export function resolveSelf(specifier: string, selfRoot: string): string | undefined {
  if (specifier === 'livepatch') return pathToFileURL(join(selfRoot, 'dist/src/index.js')).href;
  if (specifier === 'livepatch/register')
    return pathToFileURL(join(selfRoot, 'dist/src/loader/register.js')).href;
  return undefined;
}
