// The instrumenter as the loader sees it: loaded once per thread, with its version for the cache key.
import type { InstrumentOptions, InstrumentResult } from '../instrument/types.js';

export interface Instrumenter {
  instrument(source: string, options: InstrumentOptions): InstrumentResult;
  version: string;
}

/** Loads src/instrument. Throws (with the cause) when it is missing or does not have the expected shape. */
export async function loadInstrumenter(): Promise<Instrumenter> {
  // A computed specifier keeps this file compiling while src/instrument is being written.
  const specifier = '../instrument/index.js';
  const mod = (await import(specifier)) as { instrument?: unknown; INSTRUMENTER_VERSION?: unknown };
  if (typeof mod.instrument !== 'function') throw new Error("'src/instrument' has no 'instrument' function");
  return {
    instrument: mod.instrument as Instrumenter['instrument'],
    version: String(mod.INSTRUMENTER_VERSION ?? '0'),
  };
}
