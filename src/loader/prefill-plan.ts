// Which files `livepatch cache warm` prepares: the app's own and those of its dependencies the loader's filter
// would instrument, found by walking the app's package graph as Node resolves it (symlinks and nested copies too).
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import type { ModuleFormat } from '../instrument/types.js';
import type { LoaderConfig } from './config.js';
import { decide } from './filter.js';
import { moduleIdentity, readPackageJson } from './module-id.js';
import type { PnpApi } from './pnp.js';

export interface PlannedFile {
  file: string;
  /** For TypeScript of undecided format ('typescript': a .ts with no "type" above it), 'commonjs' until stripped. */
  format: ModuleFormat;
  /** Bytes on disk: the biggest files are handed out first, so no worker is left with one at the end. */
  size: number;
  /**
   * TypeScript as Node's own type stripping runs it: stripped first (strip-types.ts), then of `format`, or
   * 'undecided' when Node's syntax detection decides it from the stripped code.
   */
  typescript?: 'decided' | 'undecided';
}

export interface PlanOptions {
  /** Count the app's devDependencies too. */
  withDev?: boolean;
  /** Yarn's Plug'n'Play API, set up in this thread (src/loader/pnp.ts): packages are found through it. */
  pnp?: PnpApi | undefined;
  /** Prepare .ts/.mts/.cts files as Node's type stripping runs them (where the service's start instruments them). */
  typescript?: boolean;
}

export interface Plan {
  files: PlannedFile[];
  /** Files left out, counted by reason ('not JavaScript', 'TypeScript …', NOT_RUNTIME, 'not selected by the filter'). */
  skipped: Record<string, number>;
  /** Dependency packages the filter leaves out entirely (their files are not listed one by one). */
  packagesFiltered: number;
  /** Dependency packages named in a package.json that are not installed (optional ones, usually). */
  missing: string[];
}

export const NOT_JS = 'not JavaScript';
// tsx compiles a .ts file when it loads, and the loader keys the entry on that output, which only tsx can make.
// Node's own type stripping is prepared where this Node has it (PlanOptions.typescript); .tsx it does not run.
export const TYPESCRIPT = 'TypeScript (instrumented as tsx compiles it, at run time)';
export const FILTERED = 'not selected by the filter';
export const NOT_RUNTIME = "in a dependency's test, example, benchmark or docs directory";
// `node -r ./.pnp.cjs` runs it before the loader's hooks exist, so no start instruments it.
export const PNP_RUNTIME = "Yarn's Plug'n'Play runtime (loaded before the loader)";
const PNP_FILES = new Set(['.pnp.cjs', '.pnp.loader.mjs']);

// Directories a published package carries but a running service does not load from: left out of a dependency's
// files (not the app's own). A file of one that a start does load is simply instrumented then, and cached.
const NOT_RUNTIME_DIRS = new Set([
  'test',
  'tests',
  '__tests__',
  'spec',
  'example',
  'examples',
  'benchmark',
  'benchmarks',
  'bench',
  'docs',
  'fixtures',
]);

const JS = /\.(?:c|m)?js$/;
const TS = /\.(?:c|m)?tsx?$/;
const STRIPPABLE = /\.(?:c|m)?ts$/;
const DECLARATIONS = /\.d\.(?:c|m)?ts$/;

function realPath(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Where Node would find package `name` from `dir`, as a real path: the nearest `node_modules/<name>` going up, or
 * under Yarn's Plug'n'Play the location its API gives (it throws for a package `dir` does not depend on).
 */
function resolvePackage(name: string, dir: string, pnp: PnpApi | undefined): string | undefined {
  if (pnp !== undefined) {
    let found: string | null;
    try {
      found = pnp.resolveToUnqualified(name, dir + sep);
    } catch {
      return undefined;
    }
    if (found === null) return undefined;
    const real = realPath(found);
    return real !== undefined && readPackageJson(real) !== null ? real : undefined;
  }
  for (let d = dir; ; d = dirname(d)) {
    if (!d.endsWith(`${sep}node_modules`)) {
      const found = realPath(join(d, 'node_modules', name));
      if (found !== undefined && readPackageJson(found) !== null) return found;
    }
    const up = dirname(d);
    if (up === d) return undefined;
  }
}

function dependencyNames(root: string, withDev: boolean): string[] {
  const pkg = readPackageJson(root);
  if (pkg === null) return [];
  const fields = [
    'dependencies',
    'optionalDependencies',
    'peerDependencies',
    ...(withDev ? ['devDependencies'] : []),
  ];
  // peerDependenciesMeta too: an optional peer is often required in a try (debug → supports-color) and listed
  // nowhere else; when it is installed, a start loads it.
  fields.push('peerDependenciesMeta');
  const names = new Set<string>();
  for (const f of fields) {
    const deps = pkg[f];
    if (deps !== null && typeof deps === 'object') for (const n of Object.keys(deps)) names.add(n);
  }
  return [...names];
}

/** Module format of a file as Node decides it: the extension, else the nearest package.json's "type". */
function formatOf(file: string, typeCache: Map<string, ModuleFormat>): ModuleFormat {
  if (file.endsWith('.mjs')) return 'module';
  if (file.endsWith('.cjs')) return 'commonjs';
  const dir = dirname(file);
  let format = typeCache.get(dir);
  if (format === undefined) {
    const pkg = readPackageJson(dir);
    if (pkg !== null) format = pkg.type === 'module' ? 'module' : 'commonjs';
    else {
      const up = dirname(dir);
      format = up === dir ? 'commonjs' : formatOf(join(up, 'x.js'), typeCache);
    }
    typeCache.set(dir, format);
  }
  return format;
}

/** The "type" of the nearest package.json above `file` (Node's rule for a .ts file), if it has one. */
function declaredType(file: string): ModuleFormat | undefined {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const pkg = readPackageJson(dir);
    if (pkg !== null) return pkg.type === 'module' || pkg.type === 'commonjs' ? pkg.type : undefined;
    if (dirname(dir) === dir) return undefined;
  }
}

/** How Node's type stripping runs a TypeScript file: by extension, else by "type", else undecided. */
function typescriptPlan(file: string): Pick<PlannedFile, 'format' | 'typescript'> {
  if (file.endsWith('.mts')) return { format: 'module', typescript: 'decided' };
  if (file.endsWith('.cts')) return { format: 'commonjs', typescript: 'decided' };
  const type = declaredType(file);
  return type === undefined
    ? { format: 'commonjs', typescript: 'undecided' }
    : { format: type, typescript: 'decided' };
}

/**
 * Every file under `dir`, not entering `node_modules` or dot-directories (.git, .cache), each with whether it lies
 * in a directory named in `skipDirs` (then it is only counted).
 */
function* walk(
  dir: string,
  skipDirs: Set<string> | undefined,
  skipped = false,
): Generator<[string, boolean]> {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && !e.name.startsWith('.'))
        yield* walk(p, skipDirs, skipped || skipDirs?.has(e.name) === true);
    } else if (e.isFile()) yield [p, skipped];
    else if (e.isSymbolicLink()) {
      // A linked file counts as the file it names (module filenames are real paths); linked directories are
      // left alone here: a linked package is reached through the package graph instead.
      const real = realPath(p);
      if (real !== undefined && statSync(real).isFile()) yield [real, skipped];
    }
  }
}

/**
 * The files of the app at `config.appRoot` (its own, outside node_modules) and of the packages it depends on,
 * transitively, that the loader would instrument under `config` (src/loader/filter.ts decides, as at run time).
 * `devDependencies` count for the app itself only when `options.withDev`; see PlanOptions for the others.
 */
export function planPrefill(config: LoaderConfig, options: PlanOptions = {}): Plan {
  const { withDev = false, pnp, typescript = false } = options;
  const plan: Plan = { files: [], skipped: {}, packagesFiltered: 0, missing: [] };
  const skip = (reason: string) => (plan.skipped[reason] = (plan.skipped[reason] ?? 0) + 1);
  const typeCache = new Map<string, ModuleFormat>();
  const seenFiles = new Set<string>();
  // Node strips types only outside node_modules (it refuses a dependency's .ts): the app's own files only.
  const addFiles = (dir: string, skipDirs?: Set<string>, own = false) => {
    for (const [file, notRuntime] of walk(dir, skipDirs)) {
      if (seenFiles.has(file)) continue;
      seenFiles.add(file);
      if (notRuntime) skip(NOT_RUNTIME);
      else if (PNP_FILES.has(basename(file))) skip(PNP_RUNTIME);
      else if (DECLARATIONS.test(file)) skip(NOT_JS);
      else if (TS.test(file) && !(own && typescript && STRIPPABLE.test(file))) skip(TYPESCRIPT);
      else if (!JS.test(file) && !TS.test(file)) skip(NOT_JS);
      else if (!decide(file, moduleIdentity(file), config).instrument) skip(FILTERED);
      else {
        const how = TS.test(file) ? typescriptPlan(file) : { format: formatOf(file, typeCache) };
        plan.files.push({ file, ...how, size: statSync(file).size });
      }
    }
  };
  const appRoot = realPath(config.appRoot) ?? config.appRoot;
  addFiles(appRoot, undefined, true);

  const seenPackages = new Set<string>([appRoot]);
  const queue: [string, boolean][] = [[appRoot, withDev]];
  while (queue.length > 0) {
    const [from, dev] = queue.shift() as [string, boolean];
    for (const name of dependencyNames(from, dev)) {
      const root = resolvePackage(name, from, pnp);
      if (root === undefined) {
        plan.missing.push(`${name} (from '${from}')`);
        continue;
      }
      if (seenPackages.has(root)) continue;
      seenPackages.add(root);
      queue.push([root, false]);
      // Decided for the package as a whole, as the filter does (by package name; livepatch and acorn are out).
      if (decide(join(root, 'package.json'), moduleIdentity(join(root, 'package.json')), config).instrument) {
        addFiles(root, NOT_RUNTIME_DIRS);
      } else plan.packagesFiltered++;
    }
  }
  plan.files.sort((a, b) => b.size - a.size);
  return plan;
}
