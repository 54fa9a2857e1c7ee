// One worker thread of `livepatch cache warm`: a loader context of its own (instrumenter, cache, registry), then
// one file at a time from the main thread until it says done.
import { parentPort, workerData } from 'node:worker_threads';
import { isNotraceFile } from '../instrument/parse.js';
import { installRegistry } from '../runtime/registry.js';
import { openCache } from './cache.js';
import { lazyInstrumenter } from './instrumenter.js';
import {
  flushCompiled,
  prefillFile,
  probeContext,
  variantsOf,
  type FromWorker,
  type ToWorker,
  type WorkerInit,
} from './prefill.js';
import { distrustCache } from './transform.js';

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('prefill-worker: not in a worker thread');

// The registry a start has in its main thread: with it, the loader keeps symbol tables beside the code (abi.md §3).
installRegistry();
const instrumenter = lazyInstrumenter((real) => distrustCache(probe.ctx, real));
const probe = probeContext({
  config: init.config,
  instrumenter,
  cache: init.config.cacheDir === null ? null : openCache(init.config.cacheDir, init.config.cacheDirShared),
});

port.on('message', (m: ToWorker) => {
  if ('done' in m) {
    flushCompiled();
    port.close();
    return;
  }
  const outcome = prefillFile(probe, m.job, variantsOf(m.job.format, init.hooks), isNotraceFile);
  port.postMessage({ outcome } satisfies FromWorker);
});
port.postMessage({ ready: true } satisfies FromWorker);
