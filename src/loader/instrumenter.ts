// The instrumenter as the loader sees it: its version (for the cache key) known at once, its code (and acorn's)
// loaded only when a module actually needs instrumenting — a start with a warm cache never pays for either.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { InstrumentOptions, InstrumentResult } from '../instrument/types.js';
import { debug, now } from './log.js';

export interface Instrumenter {
  instrument(source: string, options: InstrumentOptions): InstrumentResult;
  /** INSTRUMENTER_VERSION of src/instrument: part of every cache key. */
  version: string;
  /** Loads the code now, asynchronously, where a later synchronous load would be refused (features.ts). */
  preload(): Promise<void>;
  /** A function's source text as written, from the instrumented text V8 holds (instrument/source-text.ts). */
  sourceText(text: string): string;
}

interface InstrumentModule {
  instrument(source: string, options: InstrumentOptions): InstrumentResult;
  originalSourceText(text: string): string;
  INSTRUMENTER_VERSION: string;
}

const entry = fileURLToPath(new URL('../instrument/index.js', import.meta.url));

// Read from the module's text rather than by importing it: importing it loads acorn and the whole instrumenter
// (tens of ms per thread), which a start served from the cache does not need. Checked against the real value
// when the module is loaded (see lazyInstrumenter).
const VERSION_RE = /\bINSTRUMENTER_VERSION\s*=\s*['"]([^'"]+)['"]/;

/**
 * The directory of the acorn package the instrumenter imports. It must never be instrumented itself: it is
 * loaded through the app's hooks when the first module misses the cache, possibly under LIVEPATCH_INSTRUMENT='*'.
 * Found as the instrumenter's ES module `import 'acorn'` finds it — the nearest `node_modules/acorn` at or above
 * the instrumenter's directory, real path — with a few stats, not CommonJS resolution (~2.5 ms of every start).
 * Returns undefined when acorn cannot be found (the instrumenter's own import will then say why).
 */
export function acornDir(): string | undefined {
  for (let d = dirname(entry); ;) {
    const candidate = join(d, 'node_modules', 'acorn');
    if (existsSync(join(candidate, 'package.json'))) {
      try {
        return realpathSync(candidate);
      } catch {
        return undefined;
      }
    }
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

/** Thrown (the same object each time) once loading the instrumenter has failed: transform.ts warns once. */
export class InstrumenterUnavailable extends Error {}

/**
 * An instrumenter whose code is loaded, synchronously, on the first call to `instrument` — from a hook that
 * must answer synchronously (the CommonJS compile hook, module.registerHooks). Throws now only when the
 * instrumenter is not there at all (its entry cannot be read): the caller warns and the app runs as is.
 * `onLoad` runs once after a successful load, with the version the module really has.
 */
export function lazyInstrumenter(onLoad?: (realVersion: string) => void): Instrumenter {
  const text = readFileSync(entry, 'utf8');
  const version = VERSION_RE.exec(text)?.[1];
  let mod: InstrumentModule | undefined;
  let failure: InstrumenterUnavailable | undefined;
  const load = (): InstrumentModule => {
    if (mod !== undefined) return mod;
    if (failure !== undefined) throw failure;
    const started = now();
    // require(esm) (20.19+, 22.12+): the only synchronous way to load an ES module. It leaves an entry in
    // require.cache, which apps and tools walk: livepatch's own entries are taken out again.
    const req = createRequire(import.meta.url);
    const before = new Set(Object.keys(req.cache));
    try {
      mod = req(entry) as InstrumentModule;
    } catch (e) {
      failure = new InstrumenterUnavailable(
        `cannot load the instrumenter (${e instanceof Error ? e.message : String(e)})`,
      );
      throw failure;
    } finally {
      for (const key of Object.keys(req.cache)) if (!before.has(key)) delete req.cache[key];
    }
    debug(`instrumenter loaded in ${(now() - started).toFixed(1)} ms`);
    onLoad?.(mod.INSTRUMENTER_VERSION);
    return mod;
  };
  const preload = async (): Promise<void> => {
    if (mod !== undefined) return;
    const started = now();
    mod = (await import(pathToFileURL(entry).href)) as InstrumentModule;
    debug(`instrumenter loaded at start in ${(now() - started).toFixed(1)} ms`);
    onLoad?.(mod.INSTRUMENTER_VERSION);
  };
  const instrument = (s: string, o: InstrumentOptions) => load().instrument(s, o);
  const sourceText = (text: string) => load().originalSourceText(text);
  // The version is written some other way now: load at once rather than guess a cache key.
  return { instrument, version: version ?? load().INSTRUMENTER_VERSION, preload, sourceText };
}
