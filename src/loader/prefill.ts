// Filling the loader's on-disk cache ahead of time (`livepatch cache warm`): each planned file goes through the
// loader's own transformModule, in worker threads, so the entries are exactly the ones a start will look up.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SYMBOLS, type DiskCache } from './cache.js';
import type { LoaderConfig } from './config.js';
import type { PlannedFile } from './prefill-plan.js';
import { sourceText } from './hooks-sync.js';
import { readFileSync } from 'node:fs';
import { REGISTRY_KEY, type ModuleNote } from '../runtime/abi.js';
import { compileModuleWithoutRunning, compileWithoutRunning } from './prefill-compile.js';
import { cannotStrip, transformTypeScript, TS_UNSTRIPPABLE } from './strip-types.js';
import { transformModule, type TransformContext } from './transform.js';

export type PrefillStatus = 'instrumented' | 'cached' | 'notrace-file' | 'skipped' | 'failed';

export interface PrefillOutcome {
  file: string;
  status: PrefillStatus;
  /** Why, for 'skipped' and 'failed' (the loader's own words). */
  reason?: string | undefined;
  /** The cache entries a start looks up for this file (what `cache warm --prune` keeps). */
  keys?: string[];
  /** True when its code also went into Node's compile cache (CommonJS on 22.1+; compileWithoutRunning). */
  compiled?: boolean;
}

/**
 * How a start looks the module up, as a function of where it is loaded: the loader keys the entry on whether the
 * instrumenting thread has the registry (abi.md §3). CommonJS is always instrumented in the main thread, which has
 * it; ESM too under registerHooks ('sync'), but in the hooks thread, without it, under module.register ('async',
 * Node 20) — where require(esm) still goes through the main thread: such a file gets both entries.
 */
export type PrefillVariant = 'main-thread' | 'hooks-thread';

export function variantsOf(format: PlannedFile['format'], hooks: 'sync' | 'async'): PrefillVariant[] {
  return format === 'module' && hooks === 'async' ? ['main-thread', 'hooks-thread'] : ['main-thread'];
}

/** What a start's transformModule reads: CommonJS source as Node's loader decodes it, ESM as the load hook does. */
function sourceOf(file: string, format: PlannedFile['format']): string {
  const bytes = readFileSync(file);
  return format === 'module' ? sourceText(bytes) : bytes.toString('utf8');
}

/** Runs `fn` with the registry taken off the global, as in Node 20's hooks thread; puts it back after. */
function withoutRegistry<T>(fn: () => T): T {
  const g = globalThis as unknown as Record<symbol, unknown>;
  const descriptor = Object.getOwnPropertyDescriptor(g, REGISTRY_KEY);
  if (descriptor === undefined) return fn();
  delete g[REGISTRY_KEY];
  try {
    return fn();
  } finally {
    Object.defineProperty(g, REGISTRY_KEY, descriptor);
  }
}

/**
 * The per-file probe around a loader context: a cache wrapper that sees whether transformModule found the entry
 * or wrote one, and the notes it sent (a failure, or why it left the file alone).
 */
export interface Probe {
  ctx: TransformContext;
  reset(): void;
  hit: boolean;
  wrote: boolean;
  notes: ModuleNote[];
  /** Entry names looked up or written since the last reset (a symbol table's name is its entry's). */
  keys: string[];
}

export function probeContext(base: Omit<TransformContext, 'note'>): Probe {
  const probe: Probe = {
    ctx: undefined as unknown as TransformContext,
    hit: false,
    wrote: false,
    notes: [],
    keys: [],
    reset() {
      probe.hit = false;
      probe.wrote = false;
      probe.notes = [];
      probe.keys = [];
    },
  };
  const wrap = (cache: DiskCache): DiskCache => ({
    dir: cache.dir,
    get(key) {
      probe.keys.push(key.endsWith(SYMBOLS) ? key.slice(0, -SYMBOLS.length) : key);
      const v = cache.get(key);
      if (v !== undefined && !key.endsWith('.sym')) probe.hit = true;
      return v;
    },
    set(key, code) {
      probe.keys.push(key.endsWith(SYMBOLS) ? key.slice(0, -SYMBOLS.length) : key);
      const ok = cache.set(key, code);
      if (ok && !key.endsWith('.sym')) probe.wrote = true;
      return ok;
    },
  });
  probe.ctx = {
    ...base,
    cache: base.cache === null ? null : wrap(base.cache),
    note: (n) => probe.notes.push(n),
  };
  return probe;
}

/**
 * Prepares one file's cache entries (one per variant) through transformModule; never throws. `isNotrace`
 * tells a `// livepatch: notrace-file` module (cached as is) from an instrumented one.
 */
export async function prefillFile(
  probe: Probe,
  job: PlannedFile,
  variants: PrefillVariant[],
  isNotrace: (source: string) => boolean,
): Promise<PrefillOutcome> {
  let source: string;
  let format = job.format;
  try {
    source = sourceOf(job.file, job.typescript !== undefined ? 'module' : job.format);
  } catch (e) {
    return { file: job.file, status: 'failed', reason: `cannot read it (${(e as Error).message})` };
  }
  let hits = 0;
  let writes = 0;
  const keys = new Set<string>();
  let compiled = false;
  for (const v of variants) {
    probe.reset();
    let code: string | undefined;
    if (job.typescript !== undefined) {
      // As the load hook does at a start (hooks-sync.ts): stripped as Node strips it, keyed on the file's text.
      const decided = job.typescript === 'undecided' ? undefined : job.format;
      const ts = transformTypeScript(probe.ctx, job.file, source, decided);
      if (ts === undefined) {
        const reason = probe.notes[0]?.reason ?? cannotStrip() ?? TS_UNSTRIPPABLE;
        return { file: job.file, status: 'skipped', reason };
      }
      ({ code, format } = ts);
    } else {
      const run = () => transformModule(probe.ctx, job.file, source, format);
      if (v === 'hooks-thread') withoutRegistry(run);
      else code = run();
    }
    // What the hooks hand Node at a start is what transformModule returned: the same compile cache key. ESM only
    // where a start instruments it in the main thread too (registerHooks: no 'hooks-thread' variant).
    if (code !== undefined && probe.notes.length === 0) {
      if (format === 'commonjs') compiled = compileWithoutRunning(job.file, code);
      else if (!variants.includes('hooks-thread'))
        compiled = await compileModuleWithoutRunning(job.file, code);
    }
    for (const k of probe.keys) keys.add(k);
    const failed = probe.notes.find((n) => n.status === 'failed');
    if (failed !== undefined) return { file: job.file, status: 'failed', reason: failed.reason };
    const skipped = probe.notes.find((n) => n.status === 'skipped');
    if (skipped !== undefined) return { file: job.file, status: 'skipped', reason: skipped.reason };
    if (probe.hit) hits++;
    if (probe.wrote) writes++;
  }
  if (writes === 0 && hits === 0) {
    return { file: job.file, status: 'skipped', reason: 'no cache entry was written (is the cache off?)' };
  }
  const also = compiled ? { compiled } : {};
  if (isNotrace(source)) return { file: job.file, status: 'notrace-file', keys: [...keys], ...also };
  return { file: job.file, status: writes > 0 ? 'instrumented' : 'cached', keys: [...keys], ...also };
}

/** Messages of the prefill workers (prefill-worker.ts). */
export interface WorkerInit {
  config: LoaderConfig;
  hooks: 'sync' | 'async';
  /** The project's `.pnp.cjs` under Yarn's Plug'n'Play: each worker sets it up to read the zip archives. */
  pnp?: string | undefined;
}
export type ToWorker = { job: PlannedFile } | { done: true };
export type FromWorker = { ready: true } | { outcome: PrefillOutcome };

const IN_FLIGHT = 4;

/**
 * Prefills every file of `files` with `workers` worker threads (default: one per core), handing each the next file
 * as soon as it is free (biggest first). Calls `onOutcome` as files finish; resolves when all are done. Rejects
 * only when a worker cannot start or dies (a file that fails to instrument is an outcome, not an error).
 */
export async function runPrefill(
  init: WorkerInit,
  files: PlannedFile[],
  workers = availableParallelism(),
  onOutcome: (o: PrefillOutcome) => void = () => {},
): Promise<PrefillOutcome[]> {
  const outcomes: PrefillOutcome[] = [];
  let next = 0;
  const count = Math.max(1, Math.min(workers, files.length));
  const entry = new URL('./prefill-worker.js', import.meta.url);
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(entry, { workerData: init });
      const feed = () => {
        const job = files[next++];
        w.postMessage(job === undefined ? ({ done: true } satisfies ToWorker) : ({ job } satisfies ToWorker));
      };
      w.on('message', (m: FromWorker) => {
        if ('outcome' in m) {
          outcomes.push(m.outcome);
          onOutcome(m.outcome);
          feed();
        } else {
          // A few files queued ahead: with one in flight, a worker sat idle for every round trip to this thread.
          for (let k = 0; k < IN_FLIGHT; k++) feed();
        }
      });
      w.on('error', reject);
      w.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`prefill worker exited with ${code}`)),
      );
    });
  await Promise.all(Array.from({ length: files.length === 0 ? 0 : count }, one));
  return outcomes;
}
