// Module identity (DESIGN.md §6): the id `<package name>/<path inside the package>` and the content hash.
// Shared with the patch builder, so both name a module the same way.
import { hash as oneShotHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';

export interface ModuleIdentity {
  /** `shop-api/src/cart.js`, `express/lib/response.js`, `@scope/pkg/dist/index.js`. */
  id: string;
  /** The `name` of the nearest enclosing package.json that has one. */
  packageName: string;
  /** The directory holding that package.json. */
  packageRoot: string;
}

interface PackageJson {
  name?: unknown;
  [key: string]: unknown;
}

// One read per directory for the life of the process: a big app asks about the same few dozen directories
// thousands of times, and package.json files do not change under a running process in any way we honour.
const jsonCache = new Map<string, PackageJson | null>();
const namedCache = new Map<string, { name: string; root: string } | null>();
// The package of each directory holding modules, as moduleIdentity uses it.
const packageCache = new Map<string, { name: string; root: string; prefix: string }>();

/**
 * Reads and parses `<dir>/package.json`, cached. Returns null when there is none or it is not valid JSON (Node
 * itself would refuse such a package; here it simply does not count as a package boundary).
 */
export function readPackageJson(dir: string): PackageJson | null {
  let json = jsonCache.get(dir);
  if (json !== undefined) return json;
  const file = join(dir, 'package.json');
  try {
    // Most directories walked through have none (`lib/`, `dist/…`): a failed read would throw, and an error with
    // its stack costs more than the existsSync that saves it (~75 of 180 directories of a 500-module app).
    if (!existsSync(file)) {
      jsonCache.set(dir, null);
      return null;
    }
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    json =
      parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
        ? (parsed as PackageJson)
        : null;
  } catch {
    json = null;
  }
  jsonCache.set(dir, json);
  return json;
}

/** The nearest directory at or above `dir` whose package.json has a non-empty string `name`, or null. */
export function findNamedPackage(dir: string): { name: string; root: string } | null {
  const seen: string[] = [];
  let found: { name: string; root: string } | null = null;
  for (let d = dir; ;) {
    const cached = namedCache.get(d);
    if (cached !== undefined) {
      found = cached;
      break;
    }
    seen.push(d);
    const name = readPackageJson(d)?.name;
    if (typeof name === 'string' && name !== '') {
      found = { name, root: d };
      break;
    }
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const d of seen) namedCache.set(d, found);
  return found;
}

/** The nearest directory at or above `dir` holding any package.json, or null. */
export function findAnyPackageRoot(dir: string): string | null {
  for (let d = dir; ;) {
    if (readPackageJson(d) !== null) return d;
    const up = dirname(d);
    if (up === d) return null;
    d = up;
  }
}

/**
 * The identity of the module at absolute path `file`. The package is the nearest enclosing package.json with a
 * name; when there is none (a loose script), the nearest directory with any package.json, else the file's own
 * directory, stands in and is named after its basename — such ids are not reproducible elsewhere, so apps that
 * want patches built for them should have a named package.json. Reads only package.json files (cached).
 */
export function moduleIdentity(file: string): ModuleIdentity {
  const dir = dirname(file);
  let pkg = packageCache.get(dir);
  if (pkg === undefined) {
    const named = findNamedPackage(dir);
    const root = named?.root ?? findAnyPackageRoot(dir) ?? dir;
    pkg = { name: named?.name ?? basename(root), root, prefix: root.endsWith(sep) ? root : root + sep };
    packageCache.set(dir, pkg);
  }
  // The package root is an ancestor of the file (found by walking up from it): the rest of the path is a
  // slice, not a path.relative (which resolves both paths against the working directory, on every module).
  const inside = file.startsWith(pkg.prefix) ? file.slice(pkg.prefix.length) : relative(pkg.root, file);
  const id = `${pkg.name}/${sep === '/' ? inside : inside.split(sep).join('/')}`;
  return { id, packageName: pkg.name, packageRoot: pkg.root };
}

/**
 * The identity of `file`, worked out on first read of any of its fields: a module the filters turn down by its path
 * alone (a dependency nobody named) needs none, and the package.json reads behind one are most of what such a
 * module costs the loader (~8 ms of a 500-module start).
 */
export function lazyIdentity(file: string): ModuleIdentity {
  let known: ModuleIdentity | undefined;
  const get = (): ModuleIdentity => (known ??= moduleIdentity(file));
  return {
    get id() {
      return get().id;
    },
    get packageName() {
      return get().packageName;
    },
    get packageRoot() {
      return get().packageRoot;
    },
  };
}

/** sha256 (hex) of a module's bytes as read from disk, before any transpiler or instrumentation. */
export function contentHash(bytes: Uint8Array | string): string {
  // crypto.hash (20.12+): one call, no Hash object — about a third cheaper for a module-sized input.
  return oneShotHash('sha256', bytes, 'hex');
}
