// `livepatch cache warm [DIR]`: fills the loader's on-disk cache before the service starts (a Docker build, a CI
// job), so its first start pays no instrumenting — livepatch's counterpart of ftrace's NOPs laid down at build time.
import { existsSync, lstatSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join, resolve } from 'node:path';
import { LivepatchError } from '../errors.js';
import { loadConfig, type LoaderConfig } from '../loader/config.js';
import { esmHookKind } from '../loader/features.js';
import { CACHE_FORMAT } from '../loader/cache.js';
import { planPrefill, type Plan } from '../loader/prefill-plan.js';
import { findPnp, setupPnp } from '../loader/pnp.js';
import { cannotStrip } from '../loader/strip-types.js';
import { runPrefill, type PrefillOutcome } from '../loader/prefill.js';
import { UsageError } from './args.js';
import { duration } from './format.js';
import { EXIT, type Io } from './session.js';

export const CACHE_USAGE = `usage: livepatch cache warm [DIR] [--workers N] [--dev] [--enable-source-maps] [--prune] [--json]

Fills the loader's cache for the app at DIR (default: the current directory): its own files and those of the
dependencies its 'livepatch.instrument' field and LIVEPATCH_INSTRUMENT select, exactly as a start would instrument
them, and on Node 22.1+ compiles them into Node's compile cache without running them (ES modules from 22.15).
Run it with the Node.js, the paths, the user, the environment (LIVEPATCH_INSTRUMENT, LIVEPATCH_CACHE_DIR) and the
source-map setting the service will have. --prune then removes the entries this tree does not need (files that changed or went
away, older cache formats); not for a cache directory that several apps share.`;

interface WarmOptions {
  dir: string;
  workers: number | undefined;
  dev: boolean;
  sourceMaps: boolean;
  prune: boolean;
  json: boolean;
}

function parseWarm(argv: string[]): WarmOptions {
  const o: WarmOptions = {
    dir: '.',
    workers: undefined,
    dev: false,
    sourceMaps: false,
    prune: false,
    json: false,
  };
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    if (flag === '--workers') {
      const v = inline ?? argv[++i];
      if (v === undefined || !/^[1-9][0-9]{0,3}$/.test(v))
        throw new UsageError(`'--workers' expects a number of threads >= 1, not '${v ?? ''}'`);
      o.workers = Number(v);
    } else if (inline !== undefined) throw new UsageError(`option '${flag}' takes no value`);
    else if (flag === '--dev') o.dev = true;
    else if (flag === '--enable-source-maps') o.sourceMaps = true;
    else if (flag === '--json') o.json = true;
    else if (flag === '--prune') o.prune = true;
    else if (flag?.startsWith('-') && flag !== '-') throw new UsageError(`unknown option '${flag}'`);
    else positionals.push(arg);
  }
  if (positionals.length > 1) throw new UsageError(`'cache warm' takes one DIR, got ${positionals.length}`);
  o.dir = positionals[0] ?? '.';
  return o;
}

/**
 * The loader's configuration for a service started from `dir`, as loadConfig computes it there: it finds the app
 * root from the entry script, so it is given a script path inside `dir` for the length of the call.
 */
function configFor(dir: string, sourceMaps: boolean): LoaderConfig {
  const saved = process.argv[1];
  process.argv[1] = join(dir, '.livepatch-cache-warm');
  try {
    const config = loadConfig(process.env);
    // As the service will: --enable-source-maps given here, or on this command's own node, or NODE_V8_COVERAGE.
    return { ...config, inlineMaps: sourceMaps || config.inlineMaps };
  } finally {
    if (saved === undefined) process.argv.splice(1, 1);
    else process.argv[1] = saved;
  }
}

export interface WarmReport {
  appRoot: string;
  cacheDir: string;
  hooks: 'sync' | 'async';
  /** The project's `.pnp.cjs` when the app uses Yarn's Plug'n'Play, else null. */
  pnp: string | null;
  workers: number;
  files: number;
  instrumented: number;
  cached: number;
  notraceFile: number;
  /**
   * CommonJS files also compiled into Node's compile cache (22.1+, without running them): the first start then
   * finds V8's code too. null where Node has no compile cache or it is off (LIVEPATCH_COMPILE_CACHE=off).
   */
  compiled: number | null;
  failed: { file: string; reason: string }[];
  skipped: Record<string, number>;
  packagesFiltered: number;
  missing: string[];
  ms: number;
  /** CPU time of the whole command, every thread: steadier than `ms` on a busy machine. */
  cpuMs: number;
  /** With --prune: what was removed. */
  pruned?: PruneReport;
}

export interface PruneReport {
  /** Entries (and leftover temporary files) removed from the current format's directory. */
  entries: number;
  bytes: number;
  /** Directories of older cache formats removed whole (`v1` … `v<n-1>`). */
  formats: string[];
  /** Entries not needed by this tree but younger than a minute, kept: a running start may have just written them. */
  keptYoung: number;
}

/** An entry written less than this long ago is kept: a start running beside the prune may be about to read it. */
const YOUNG_MS = 60_000;

/**
 * Removes from the cache at `root` what a start of this tree will not look up: entries whose key no planned file
 * touched (the file changed, or went away, or another setting made it), temporary files left by a crash, and the
 * directories of older cache formats. Node's own compile cache (`compile/`) is Node's to manage and left alone.
 */
export function pruneCache(root: string, keep: ReadonlySet<string>, now = Date.now()): PruneReport {
  const report: PruneReport = { entries: 0, bytes: 0, formats: [], keptYoung: 0 };
  for (const name of readdirSync(root)) {
    const m = /^v([0-9]+)$/.exec(name);
    if (m !== null && Number(m[1]) < CACHE_FORMAT) {
      rmSync(join(root, name), { recursive: true, force: true });
      report.formats.push(name);
    }
  }
  const dir = join(root, `v${CACHE_FORMAT}`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return report;
  }
  for (const name of names) {
    if (keep.has(name)) continue;
    const path = join(dir, name);
    try {
      const st = lstatSync(path);
      if (!st.isFile()) continue;
      // A temporary file of a write in progress is young; one a crash left behind is not.
      if (now - st.mtimeMs < YOUNG_MS) {
        report.keptYoung++;
        continue;
      }
      unlinkSync(path);
      report.entries++;
      report.bytes += st.size;
    } catch {}
  }
  return report;
}

/** As the loader decides it (transform.ts enableCompileCache): Node without the API, or the setting off. */
function compileCacheOff(): boolean {
  const setting = process.env.LIVEPATCH_COMPILE_CACHE;
  return (
    typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache !== 'function' ||
    setting === 'off' ||
    setting === '0' ||
    setting === 'false'
  );
}

function summarize(
  plan: Plan,
  outcomes: PrefillOutcome[],
  base: Omit<
    WarmReport,
    | 'files'
    | 'instrumented'
    | 'cached'
    | 'notraceFile'
    | 'compiled'
    | 'failed'
    | 'skipped'
    | 'packagesFiltered'
    | 'missing'
  >,
): WarmReport {
  const count = (s: PrefillOutcome['status']) => outcomes.filter((o) => o.status === s).length;
  const skipped = { ...plan.skipped };
  for (const o of outcomes)
    if (o.status === 'skipped') skipped[o.reason ?? 'skipped'] = (skipped[o.reason ?? 'skipped'] ?? 0) + 1;
  return {
    ...base,
    files: plan.files.length,
    instrumented: count('instrumented'),
    cached: count('cached'),
    notraceFile: count('notrace-file'),
    compiled: compileCacheOff() ? null : outcomes.filter((o) => o.compiled === true).length,
    failed: outcomes
      .filter((o) => o.status === 'failed')
      .map((o) => ({ file: o.file, reason: o.reason ?? '' }))
      .sort((a, b) => a.file.localeCompare(b.file)),
    skipped,
    packagesFiltered: plan.packagesFiltered,
    missing: plan.missing,
  };
}

function render(r: WarmReport): string {
  const lines = [
    `warmed the livepatch cache of '${r.appRoot}' in ${duration(r.ms)} (CPU ${duration(r.cpuMs)}, ${r.workers} worker${r.workers === 1 ? '' : 's'}, ${r.hooks} hooks)`,
    `  cache: ${r.cacheDir}`,
    ...(r.pnp !== null ? [`  packages through Yarn's Plug'n'Play: ${r.pnp}`] : []),
    `  ${r.instrumented} instrumented, ${r.cached} already in the cache, ${r.notraceFile} notrace-file (cached as is), ${r.failed.length} failed`,
  ];
  if (r.compiled !== null)
    lines.push(`  ${r.compiled} compiled into Node's compile cache (not run), for the first start to find`);
  const skips = Object.entries(r.skipped).sort((a, b) => b[1] - a[1]);
  if (skips.length > 0 || r.packagesFiltered > 0) lines.push('  skipped:');
  for (const [reason, n] of skips) lines.push(`    ${n} file${n === 1 ? '' : 's'}: ${reason}`);
  if (r.packagesFiltered > 0)
    lines.push(
      `    ${r.packagesFiltered} package${r.packagesFiltered === 1 ? '' : 's'}: not selected by the filter`,
    );
  for (const f of r.failed) lines.push(`  failed to instrument '${f.file}': ${f.reason}`);
  for (const m of r.missing) lines.push(`  not installed: ${m}`);
  if (r.pruned !== undefined)
    lines.push(
      `  pruned: ${r.pruned.entries} entr${r.pruned.entries === 1 ? 'y' : 'ies'} this tree does not need (${(r.pruned.bytes / 1024).toFixed(0)} KB)` +
        (r.pruned.formats.length > 0 ? `, older formats ${r.pruned.formats.join(', ')}` : '') +
        (r.pruned.keptYoung > 0 ? `; ${r.pruned.keptYoung} written in the last minute kept` : ''),
    );
  return lines.join('\n');
}

/**
 * Runs `livepatch cache …`; resolves with the exit code. A file that fails to instrument is reported and the
 * exit code stays 0: at run time it would load uninstrumented, and one odd file in a dependency must not fail a
 * deploy. Throws UsageError or LivepatchError (main prints them).
 */
export async function cacheCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    io.out(CACHE_USAGE);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub !== 'warm') throw new UsageError(`unknown 'cache' command '${sub}' (try 'livepatch cache warm')`);
  const o = parseWarm(rest);
  const dir = resolve(o.dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new LivepatchError('ENOENT', `no such directory '${dir}'`);
  const started = performance.now();
  const config = configFor(dir, o.sourceMaps);
  if (config.cacheDir === null)
    throw new LivepatchError('EINVAL', 'the cache is off (LIVEPATCH_CACHE_DIR=off): nothing to warm');
  const kind = esmHookKind(process.env);
  if (kind === 'none') throw new LivepatchError('ENODEV', `Node.js ${process.version} has no module hooks`);
  // Yarn's Plug'n'Play: packages are read out of zip archives, found through its API, as a start under it does.
  const pnp = findPnp(dir);
  const plan = planPrefill(config, {
    withDev: o.dev,
    pnp: pnp === undefined ? undefined : setupPnp(pnp),
    // TypeScript that Node strips itself is instrumented by the registerHooks load hook (strip-types.ts).
    typescript: kind === 'sync' && cannotStrip() === undefined,
  });
  const outcomes = await runPrefill({ config, hooks: kind, pnp }, plan.files, o.workers);
  const workers = Math.max(
    1,
    Math.min(o.workers ?? (await import('node:os')).availableParallelism(), plan.files.length),
  );
  let pruned: PruneReport | undefined;
  if (o.prune) {
    // Only after a warm that reached every planned file: an entry it did not touch is one no start will read.
    const keep = new Set(outcomes.flatMap((x) => x.keys ?? []));
    pruned = pruneCache(config.cacheDir, keep);
  }
  const cpu = process.cpuUsage(); // the whole process: worker threads included
  const report = summarize(plan, outcomes, {
    appRoot: config.appRoot,
    cacheDir: config.cacheDir,
    hooks: kind,
    pnp: pnp ?? null,
    workers,
    ms: performance.now() - started,
    cpuMs: (cpu.user + cpu.system) / 1000,
    ...(pruned !== undefined ? { pruned } : {}),
  });
  io.out(o.json ? JSON.stringify(report) : render(report));
  return EXIT.ok;
}
