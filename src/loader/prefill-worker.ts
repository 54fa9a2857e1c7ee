// One worker thread of `livepatch cache warm`: a loader context of its own (instrumenter, cache, registry), then
// one file at a time from the main thread until it says done.
import { parentPort, workerData } from 'node:worker_threads';
import { isNotraceFile } from '../instrument/parse.js';
import { installRegistry } from '../runtime/registry.js';
import { openCache } from './cache.js';
import { lazyInstrumenter } from './instrumenter.js';
import { setupPnp } from './pnp.js';
import { flushCompiled } from './prefill-compile.js';
import {
  prefillFile,
  probeContext,
  variantsOf,
  type FromWorker,
  type PrefillOutcome,
  type ToWorker,
  type WorkerInit,
} from './prefill.js';
import { distrustCache } from './transform.js';

const init = workerData as WorkerInit;
const port = parentPort;
if (port === null) throw new Error('prefill-worker: not in a worker thread');
if (init.pnp !== undefined) setupPnp(init.pnp);

// The registry a start has in its main thread: with it, the loader keeps symbol tables beside the code (abi.md §3).
installRegistry();
const instrumenter = lazyInstrumenter((real) => distrustCache(probe.ctx, real));
const probe = probeContext({
  config: init.config,
  instrumenter,
  cache: init.config.cacheDir === null ? null : openCache(init.config.cacheDir, init.config.cacheDirShared),
});

// One file at a time, in the order they came: compiling an ES module ahead is asynchronous (compile-ahead hooks).
let queue = Promise.resolve();
port.on('message', (m: ToWorker) => {
  queue = queue.then(async () => {
    if ('done' in m) {
      flushCompiled();
      port.close();
      return;
    }
    let outcome: PrefillOutcome;
    try {
      outcome = await prefillFile(probe, m.job, variantsOf(m.job.format, init.hooks), isNotraceFile);
    } catch (e) {
      outcome = { file: m.job.file, status: 'failed', reason: e instanceof Error ? e.message : String(e) };
    }
    port.postMessage({ outcome } satisfies FromWorker);
  });
});
port.postMessage({ ready: true } satisfies FromWorker);
