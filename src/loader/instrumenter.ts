// The instrumenter as the loader sees it: loaded once per thread, with its version for the cache key.
import type { InstrumentOptions, InstrumentResult } from '../instrument/types.js';

export interface Instrumenter {
  instrument(source: string, options: InstrumentOptions): InstrumentResult;
  version: string;
}

/**
 * Loads src/instrument (and acorn with it). Imported on demand rather than at the top so that a failure to load
 * it reaches the caller as an error — one warning, app uninstrumented — instead of failing `--import`.
 */
export async function loadInstrumenter(): Promise<Instrumenter> {
  const { instrument, INSTRUMENTER_VERSION } = await import('../instrument/index.js');
  return { instrument, version: INSTRUMENTER_VERSION };
}
