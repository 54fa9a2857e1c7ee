// One module through the loader: decide, hash, instrument (or take it from the cache), and note what happened.
// Runs in the main thread (CommonJS, and ESM on Node 22.15+) and in the Node 20 hooks thread (ESM).
import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join } from 'node:path';
import { isLivepatchError } from '../errors.js';
import type { ModuleFormat, SourceMapV3 } from '../instrument/types.js';
import { REGISTRY_KEY, type ModuleNote, type Registry } from '../runtime/abi.js';
import { cacheKey, SYMBOLS, type DiskCache } from './cache.js';
import type { LoaderConfig } from './config.js';
import { decide } from './filter.js';
import { InstrumenterUnavailable, type Instrumenter } from './instrumenter.js';
import { debug, now, warn } from './log.js';
import { contentHash, lazyIdentity, type ModuleIdentity } from './module-id.js';
import { takeSourceMap, unwrapTsxCjs, withInlineMap } from './source-map.js';

export interface TransformContext {
  config: LoaderConfig;
  instrumenter: Instrumenter;
  cache: DiskCache | null;
  /** Passes a note to the runtime registry (directly, or from the hooks thread through a port). */
  note(note: ModuleNote): void;
}

// Every instrumented module starts with this (abi.md §1). Seeing it means another hook (or a second copy of
// livepatch) already did the work: the module must be instrumented exactly once.
const HEADER = 'const __lp$m = { __lp$u_';

/** True when `source` is already instrumented output. */
export function isInstrumented(source: string): boolean {
  return source.includes(HEADER);
}

function instrumentFresh(
  ctx: TransformContext,
  source: string,
  file: string,
  id: string,
  hash: string,
  format: ModuleFormat,
  symbolsKey: string | undefined,
): { code: string; symbols: () => string } {
  // A map file beside the module is only read when this process uses source maps (inlineMaps); a map inline in
  // the code (a transpiler's, tsx's) is always carried on, composed, since it is part of what was handed over.
  const taken = takeSourceMap(source, file, ctx.config.inlineMaps);
  const unwrapped = format === 'commonjs' ? unwrapTsxCjs(taken.code, file, taken.map) : undefined;
  const input = unwrapped?.body ?? taken.code;
  const inputMap: SourceMapV3 | undefined = unwrapped !== undefined ? unwrapped.map : taken.map;
  const out = ctx.instrumenter.instrument(input, { id, hash, file, format, inputMap, symbolsKey });
  // Plain JavaScript keeps its lines without a map (only columns move on instrumented lines), and a map is
  // about as big as the code it describes and kept in memory with it: built and appended only when Node will
  // use it (`out.map` is built on first read). A transpiler's map is always carried on, composed, since without
  // it positions would be the transpiler's.
  let code: string;
  if (inputMap !== undefined || ctx.config.inlineMaps) {
    const [wrapped, map] = unwrapped !== undefined ? unwrapped.wrap(out.code, out.map) : [out.code, out.map];
    code = withInlineMap(wrapped, map);
  } else code = unwrapped !== undefined ? unwrapped.wrap(out.code, out.map)[0] : out.code;
  // Only the table's text is kept: a closure over `out` would keep the parse and the edits alive with the module.
  const symbols = JSON.stringify(out.symbols);
  return { code, symbols: () => symbols };
}

/**
 * The registry of this thread when it can keep symbol tables outside the code (abi.md §3), else undefined: the
 * Node 20 hooks thread has none (its output runs in the main thread), so what it instruments carries its table.
 */
function symbolRegistry(): Registry | undefined {
  const r = (globalThis as Record<symbol, unknown>)[REGISTRY_KEY] as Registry | undefined;
  return typeof r?.provideSymbols === 'function' ? r : undefined;
}

let compileCacheTried = false;
/** Set when this thread turned Node's compile cache on: then flushCompileCache is called once start-up settles. */
let compileCacheOn = false;
/** Set when Node's compile cache is on in this thread, whoever turned it on (this loader, or NODE_COMPILE_CACHE). */
let compileCacheUsable = false;

/**
 * True once this thread has instrumented a module with Node's compile cache on: code compiled here from now on goes
 * into it (`cache warm` fills it so; prefill.ts).
 */
export function compileCacheInUse(): boolean {
  return compileCacheUsable;
}

/**
 * Turns on Node's compile cache (22.1+) in `<cache dir>/compile`, the first time this thread instruments a module:
 * V8 then compiles instrumented code, which is bigger than its source, only on the first start (docs/loader.md).
 * It is process-wide (modules livepatch does not touch are cached too, as NODE_COMPILE_CACHE would). Left alone
 * when LIVEPATCH_COMPILE_CACHE=off, without livepatch's cache, or when the compile cache is already on or
 * disabled (NODE_COMPILE_CACHE, NODE_DISABLE_COMPILE_CACHE): Node then reports so and changes nothing. Node
 * reports a directory it cannot use the same way, and carries on without it. Never throws.
 */
function enableCompileCache(ctx: TransformContext): void {
  compileCacheTried = true;
  // Not in the feature table: this is Node's own API, present or not (22.1+), with no behaviour to choose between.
  type Enable = (dir: string) => { status: number; message?: string; directory?: string };
  const enable = (nodeModule as { enableCompileCache?: Enable }).enableCompileCache;
  const root = ctx.config.cacheDir;
  const setting = process.env.LIVEPATCH_COMPILE_CACHE;
  if (typeof enable !== 'function' || root === null || ctx.cache === null) return;
  if (setting === 'off' || setting === '0' || setting === 'false') return;
  try {
    const r = enable(join(root, 'compile'));
    // module.constants.compileCacheStatus: FAILED 0, ENABLED 1, ALREADY_ENABLED 2, DISABLED 3.
    const status = ['failed', 'on', 'already on', 'disabled'][r.status] ?? String(r.status);
    compileCacheOn = r.status === 1;
    compileCacheUsable = r.status === 1 || r.status === 2;
    debug(
      `compile cache ${status}: '${r.directory ?? join(root, 'compile')}'${r.message ? ` (${r.message})` : ''}`,
    );
  } catch (e) {
    debug(`compile cache: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** How long no module may load before the compile cache is written (ms; LIVEPATCH_COMPILE_CACHE_FLUSH_MS). */
const SETTLED_MS =
  Number(process.env.LIVEPATCH_COMPILE_CACHE_FLUSH_MS) >= 0
    ? Number(process.env.LIVEPATCH_COMPILE_CACHE_FLUSH_MS)
    : 2000;
let lastLoad = 0;
let flushTimer: NodeJS.Timeout | undefined;

/**
 * Writes Node's compile cache once the process has loaded no module for SETTLED_MS, and again after any later
 * burst. Node itself writes it only on a clean exit, and a service stopped by SIGTERM (systemd, Kubernetes) or
 * killed never exits cleanly: its compile cache would stay empty and every start would compile the instrumented
 * code anew. One unref'd timer, re-armed only when it fires early; never throws.
 */
function compileCacheSettles(): void {
  lastLoad = now();
  if (flushTimer !== undefined) return;
  const check = (): void => {
    const quiet = now() - lastLoad;
    if (quiet < SETTLED_MS) {
      flushTimer = setTimeout(check, SETTLED_MS - quiet).unref();
      return;
    }
    flushTimer = undefined;
    const flush = (nodeModule as { flushCompileCache?: () => void }).flushCompileCache;
    try {
      const started = now();
      flush?.();
      debug(`compile cache written (${(now() - started).toFixed(1)} ms)`);
    } catch (e) {
      debug(`compile cache: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  flushTimer = setTimeout(check, SETTLED_MS).unref();
}

/**
 * Turns the cache off for this thread when the instrumenter that was loaded is not the version its text said
 * (the cache keys computed so far named the wrong one). Called once, when the instrumenter loads.
 */
export function distrustCache(ctx: TransformContext, realVersion: string): void {
  if (realVersion === ctx.instrumenter.version || ctx.cache === null) return;
  debug(`instrumenter is '${realVersion}', not '${ctx.instrumenter.version}'; cache off`);
  ctx.cache = null;
}

let warnedUnavailable = false;

/**
 * Tells the runtime that the module at `file` was left alone and why (e.g. TypeScript run by Node's own type
 * stripping, which the instrumenter cannot parse). Never throws.
 */
export function noteSkipped(ctx: TransformContext, file: string, reason: string): void {
  noteTurnedDown(ctx, file, lazyIdentity(file), { reason });
}

/**
 * The note for a module left alone, with its id and reason read only when the note is (a listing of the process's
 * modules): for a dependency nobody named they cost package.json reads, and most notes are never read. The registry
 * keeps them that way (registry.ts); a registry that copies the fields reads them at once, which is only slower.
 */
function noteTurnedDown(
  ctx: TransformContext,
  file: string,
  identity: ModuleIdentity,
  why: { readonly reason: string },
): void {
  try {
    ctx.note({
      get id() {
        try {
          return identity.id;
        } catch {
          return file;
        }
      },
      hash: '',
      file,
      status: 'skipped',
      get reason() {
        try {
          return why.reason;
        } catch {
          return 'not instrumented';
        }
      },
    });
  } catch {}
}

/**
 * True when `text` is the UTF-8 decoding of exactly one byte sequence: no lone surrogate (which UTF-8 cannot
 * hold) and no U+FFFD (which a decoder also makes of invalid bytes).
 */
function isExactText(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed() && !text.includes('\uFFFD');
}

/**
 * Returns the code to run for the module at absolute path `file`, given the `source` Node (or a transpiler
 * before us) produced for it: instrumented when the filters allow it, else `source` unchanged. Never throws: a
 * module that cannot be instrumented loads as it is, after one warning naming it and a 'failed' note.
 */
export function transformModule(
  ctx: TransformContext,
  file: string,
  source: string,
  format: ModuleFormat,
): string {
  return transform(ctx, file, source, format, undefined) as string;
}

/**
 * Code that is a pure function of the file's text, made by `make` (TypeScript stripped by Node's own stripper): the
 * entry is keyed on the file and `tag` (what made it, and which version), not on the code, so a warm start finds it
 * without making the code at all. `make` returns undefined when it cannot.
 */
export interface Derived {
  tag: string;
  make(text: string): string | undefined;
}

/**
 * transformModule for a file whose code Node does not run as it is (`text` is the file's own text): returns the
 * instrumented code of `derived.make(text)`, or of the cache's entry for it, or undefined when `make` fails (the
 * caller leaves the module to Node). Never throws. With `lookupOnly`, only the cache's entry for it as `format`,
 * if a start or `cache warm` stored one, making and noting nothing: for a file whose format is known only from its
 * code (a .ts Node left undecided), each format is asked for in turn, so a warm start need not make the code.
 */
export function transformDerived(
  ctx: TransformContext,
  file: string,
  text: string,
  format: ModuleFormat,
  derived: Derived,
  lookupOnly = false,
): string | undefined {
  return transform(ctx, file, text, format, derived, lookupOnly);
}

function transform(
  ctx: TransformContext,
  file: string,
  source: string,
  format: ModuleFormat,
  derived: Derived | undefined,
  lookupOnly = false,
): string | undefined {
  // With `derived`, `source` is the file's text and `code` what is instrumented; else both are the code.
  let code = derived === undefined ? source : undefined;
  const codeOf = (text: string): string | undefined => (derived === undefined ? text : derived.make(text));
  // What runs when the module is not instrumented after all: the code, never the text it was derived from.
  const asIs = (): string | undefined => {
    try {
      return code ?? codeOf(source);
    } catch {
      return undefined;
    }
  };
  let id = file;
  let hash = '';
  try {
    const identity = lazyIdentity(file);
    const decision = decide(file, identity, ctx.config);
    if (!decision.instrument) {
      if (lookupOnly) return undefined;
      if (decision.note) noteTurnedDown(ctx, file, identity, decision);
      return asIs();
    }
    id = identity.id;
    if (derived === undefined && isInstrumented(source)) return source;
    const registry = symbolRegistry();
    // Where the output runs (the registry's thread), before Node compiles it.
    if (!compileCacheTried && registry !== undefined) enableCompileCache(ctx);
    if (compileCacheOn) compileCacheSettles();
    const cache = ctx.cache;
    const keyOf = (fileHash: string, sourceHash: string): string =>
      cacheKey([
        ctx.instrumenter.version,
        id,
        file,
        format,
        fileHash,
        sourceHash,
        ctx.config.inlineMaps ? 'map' : 'nomap',
        // Code that names its table by key runs only where the registry was handed it: never mix the two.
        registry !== undefined ? 'symbols-by-key' : 'symbols-inline',
      ]);
    // The entry can go while the process runs (a tmp cleaner after days of uptime, someone clearing the cache):
    // the table is a function of the file, so it is made again when the file on disk is still the one loaded.
    // Code a transpiler produced cannot be made again here; its table is then unavailable until a restart.
    const again = (fileHash: string, tableKey: string): string | undefined => {
      try {
        const now = readFileSync(file);
        if (contentHash(now) !== fileHash) return undefined;
        const made = codeOf(now.toString('utf8'));
        if (made === undefined) return undefined;
        return instrumentFresh(ctx, made, file, id, fileHash, format, tableKey).symbols();
      } catch {
        return undefined;
      }
    };
    // The warm path reads no file but the entry. A module whose code is a file's exact UTF-8 — the usual case —
    // was stored under the key of one hash for both (below): the sha256 of the code's UTF-8 finds it, and that
    // hash is then the file's too. Only code that encodes one way is looked up so: with a lone surrogate or a
    // U+FFFD in it, two files could decode to it, and the file must be read to know which one is there.
    // The key that lookup missed, if it was made: the same key is not looked up twice (a failed open costs ~60 µs).
    let missed: string | undefined;
    if (cache !== null && isExactText(source)) {
      hash = contentHash(source);
      const key = keyOf(hash, derived?.tag ?? hash);
      missed = key;
      const cached = cache.get(key);
      if (cached !== undefined) {
        debug(`'${id}': cache hit`);
        const fileHash = hash;
        // Stored from a file whose bytes were this code's UTF-8: the table can be made again from that file.
        registry?.provideSymbols(key, () => cache.get(key + SYMBOLS) ?? again(fileHash, key));
        return cached;
      }
    }
    if (lookupOnly) return undefined;
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      // Code compiled under a name that is no file (a tool calling module._compile on generated code) has no
      // content hash a patch could name: it is not patchable, which is not worth a warning.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      noteSkipped(ctx, file, 'no such file on disk to hash');
      return asIs();
    }
    hash = contentHash(bytes);
    const sourceIsFile = source.length <= bytes.length && bytes.toString('utf8') === source;
    // The code handed over is usually the file itself, decoded: then it is a function of the bytes, which `hash`
    // already names, and decoding and comparing costs a fraction of hashing it again. Its key is then the one
    // the warm path above computes from the code alone whenever the bytes are exactly the code's UTF-8. Derived
    // code is a function of the file's text by definition: its key names what made it.
    const key = keyOf(
      hash,
      derived !== undefined
        ? sourceIsFile
          ? derived.tag
          : `${derived.tag}:${contentHash(source)}`
        : sourceIsFile
          ? hash
          : contentHash(source),
    );
    const symbolsEntry = key + SYMBOLS;
    const rebuild = sourceIsFile ? () => again(hash, key) : () => undefined;
    const cached = key === missed ? undefined : cache?.get(key);
    if (cached !== undefined) {
      debug(`'${id}': cache hit`);
      registry?.provideSymbols(key, () => cache?.get(symbolsEntry) ?? rebuild());
      return cached;
    }
    code ??= codeOf(source);
    if (code === undefined) return undefined;
    const started = now();
    const out = instrumentFresh(ctx, code, file, id, hash, format, registry && key);
    debug(`'${id}': instrumented in ${(now() - started).toFixed(1)} ms`);
    if (registry === undefined) {
      cache?.set(key, out.code);
    } else if (cache != null && cache.set(symbolsEntry, out.symbols()) && cache.set(key, out.code)) {
      // The table is handed over first: it goes into the entry of the code, written once.
      registry.provideSymbols(key, () => cache.get(symbolsEntry) ?? rebuild());
    } else {
      registry.provideSymbols(key, out.symbols);
    }
    return out.code;
  } catch (e) {
    if (lookupOnly) return undefined; // the caller goes on to transformDerived, which reports it
    const reason = e instanceof Error ? e.message : String(e);
    if (e instanceof InstrumenterUnavailable) {
      // One warning for the whole process, not one per module: every later module fails the same way.
      if (!warnedUnavailable) warn(`${reason}; modules load uninstrumented`);
      warnedUnavailable = true;
      try {
        ctx.note({ id, hash, file, status: 'failed', reason });
      } catch {}
      return asIs();
    }
    // TypeScript reaching the instrumenter means the transpiler's hooks ran after ours: say how to fix it.
    const hint =
      derived === undefined && isLivepatchError(e) && /\.[cm]?tsx?$/.test(file)
        ? " (put '--import tsx' before '--import livepatch/register')"
        : '';
    warn(`failed to instrument module '${id}': ${reason}${hint}; loading it uninstrumented`);
    try {
      ctx.note({ id, hash, file, status: 'failed', reason });
    } catch {}
    return asIs();
  }
}
