// The loader's configuration, computed once in the main thread from the entry point, package.json and env.
// Plain data, because on Node 20 it is handed to the hooks thread.
import { existsSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acornDir } from './instrumenter.js';
import { warn } from './log.js';
import { findAnyPackageRoot, findNamedPackage, readPackageJson } from './module-id.js';

/** One entry of the instrument list: a package name, `@scope/*`, or `*`; `exclude` when written `-name`. */
export interface InstrumentRule {
  pattern: string;
  exclude: boolean;
  from: "package.json 'livepatch.instrument'" | 'LIVEPATCH_INSTRUMENT';
}

export interface LoaderConfig {
  /** The app's root: its files (outside node_modules) are instrumented by default. */
  appRoot: string;
  /** Directories holding livepatch's own code and the acorn it parses with (never instrumented). */
  selfDirs: string[];
  /** livepatch's package root: `livepatch` resolves to `<selfRoot>/dist/src/index.js` from anywhere. */
  selfRoot: string;
  /** In order; the last rule that matches a module's package decides. */
  rules: InstrumentRule[];
  /** Where instrumented output is cached, or null for no cache. */
  cacheDir: string | null;
  /** True when cacheDir is our own per-user default under tmp, which must be checked for ownership. */
  cacheDirShared: boolean;
  /**
   * Node uses source maps in this process (--enable-source-maps, or coverage): append one to plain JavaScript
   * too, and read the map files that modules point to, to compose them (otherwise only a map inline in the code is).
   */
  inlineMaps: boolean;
  /**
   * What `Function.prototype.toString` gives for an instrumented function: the text as written (the default), or
   * V8's, prologues and all (`LIVEPATCH_SOURCE_TEXT=instrumented`). See source-text.ts.
   */
  sourceText: 'original' | 'instrumented';
}

// dist/src/loader/config.js → the package root is three levels up.
const selfRoot = fileURLToPath(new URL('../../../', import.meta.url)).replace(/[\\/]$/, '');

const optional = (dir: string | undefined): string[] => (dir === undefined ? [] : [dir]);

function realPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/**
 * The app root: the package of the entry script (process.argv[1]) — the nearest package.json with a name, else any
 * package.json — or, when there is no entry script (-e, the REPL) or it lives in node_modules (a tool run from
 * there), the same search from the working directory; the working directory itself when nothing is found.
 */
export function findAppRoot(entry: string | undefined, cwd: string): string {
  // Module filenames are real paths; the entry as typed may go through a symlink (`current` → a release dir).
  const real = entry !== undefined && isAbsolute(entry) ? realPath(entry) : undefined;
  const usable = real !== undefined && !real.split(sep).includes('node_modules');
  const start = usable ? dirname(real) : cwd;
  return findNamedPackage(start)?.root ?? findAnyPackageRoot(start) ?? cwd;
}

/** Parses `express,-qs,@scope/*` into rules; empty items are ignored. */
export function parseRules(items: readonly string[], from: InstrumentRule['from']): InstrumentRule[] {
  const rules: InstrumentRule[] = [];
  for (const raw of items) {
    const item = raw.trim();
    if (item === '' || item === '-') continue;
    const exclude = item.startsWith('-');
    rules.push({ pattern: exclude ? item.slice(1) : item, exclude, from });
  }
  return rules;
}

function packageRules(appRoot: string): InstrumentRule[] {
  const field = readPackageJson(appRoot)?.livepatch;
  if (field === undefined) return [];
  const list =
    field !== null && typeof field === 'object' ? (field as { instrument?: unknown }).instrument : field;
  if (list === undefined) return [];
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
    warn(
      `ignoring 'livepatch.instrument' in '${join(appRoot, 'package.json')}': expected an array of package names`,
    );
    return [];
  }
  return parseRules(list as string[], "package.json 'livepatch.instrument'");
}

function cacheDirFor(appRoot: string, env: NodeJS.ProcessEnv): { dir: string | null; shared: boolean } {
  const forced = env.LIVEPATCH_CACHE_DIR;
  if (forced === 'off') return { dir: null, shared: false };
  if (forced !== undefined && forced !== '') return { dir: resolve(forced), shared: false };
  // Beside the app's other tool caches (babel, eslint…) when it has node_modules; never create node_modules.
  if (existsSync(join(appRoot, 'node_modules'))) {
    return { dir: join(appRoot, 'node_modules', '.cache', 'livepatch'), shared: false };
  }
  const uid = typeof process.getuid === 'function' ? String(process.getuid()) : 'user';
  return { dir: join(tmpdir(), `livepatch-cache-${uid}`), shared: true };
}

function sourceTextSetting(value: string | undefined): LoaderConfig['sourceText'] {
  if (value === undefined || value === '' || value === 'original') return 'original';
  if (value === 'instrumented') return 'instrumented';
  warn(`ignoring LIVEPATCH_SOURCE_TEXT='${value}': expected 'original' or 'instrumented'`);
  return 'original';
}

/** Reads the configuration for this process. Warns (once per problem) about malformed settings; never throws. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoaderConfig {
  const appRoot = findAppRoot(process.argv[1], process.cwd());
  const cache = cacheDirFor(appRoot, env);
  return {
    appRoot,
    selfRoot,
    // acorn too: the instrumenter is loaded lazily, through the app's hooks, after they are in place.
    selfDirs: [join(selfRoot, 'dist', 'src'), join(selfRoot, 'src'), ...optional(acornDir())],
    rules: [
      ...packageRules(appRoot),
      ...parseRules((env.LIVEPATCH_INSTRUMENT ?? '').split(','), 'LIVEPATCH_INSTRUMENT'),
    ],
    cacheDir: cache.dir,
    cacheDirShared: cache.shared,
    // Node reads source maps when they are on, and for coverage (NODE_V8_COVERAGE) even when they are not.
    inlineMaps: process.sourceMapsEnabled || Boolean(env.NODE_V8_COVERAGE),
    sourceText: sourceTextSetting(env.LIVEPATCH_SOURCE_TEXT),
  };
}
