// The ESM hooks on Node 20: a module.register hooks module, run by Node in its own thread. It instruments there
// and sends notes for the registry to the main thread through the port it was given.
import type { MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { ModuleNote } from '../runtime/abi.js';
import { openCache } from './cache.js';
import type { LoaderConfig } from './config.js';
import { features } from './features.js';
import { lazyInstrumenter } from './instrumenter.js';
import { warn } from './log.js';
import { isPatchUrl, resolveSelf } from './patch-modules.js';
import { sourceText, type Context, type LoadResult, type ResolveResult } from './hooks-sync.js';
import { distrustCache, transformModule, type TransformContext } from './transform.js';

export interface AsyncHooksData {
  config: LoaderConfig;
  port: MessagePort;
}

let ctx: TransformContext | undefined;
let selfRoot = '';

/** Called once by Node with the data given to module.register. Never throws: without it, ESM loads as is. */
export async function initialize(data: AsyncHooksData): Promise<void> {
  selfRoot = data.config.selfRoot;
  try {
    const port = data.port;
    // Lazy, as in the main thread: the main thread waits for initialize, and a warm cache needs no parser.
    const c: TransformContext = (ctx = {
      config: data.config,
      instrumenter: lazyInstrumenter((real) => distrustCache(c, real)),
      cache:
        data.config.cacheDir === null ? null : openCache(data.config.cacheDir, data.config.cacheDirShared),
      note: (note: ModuleNote) => port.postMessage(note),
    });
    // Where require(esm) is refused under these hooks (22+), this thread cannot load it lazily either.
    if (!features.requireEsmUnderAsyncHooks.on) await c.instrumenter.preload();
  } catch (e) {
    warn(
      `cannot instrument ES modules (${e instanceof Error ? e.message : String(e)}); they load uninstrumented`,
    );
  }
}

export async function resolve(
  specifier: string,
  context: Context,
  next: (s: string, c?: Context) => Promise<ResolveResult>,
): Promise<ResolveResult> {
  try {
    return await next(specifier, context);
  } catch (e) {
    const url = resolveSelf(specifier, selfRoot);
    if (url === undefined) throw e;
    return { url, format: 'module', shortCircuit: true };
  }
}

export async function load(
  url: string,
  context: Context,
  next: (u: string, c?: Context) => Promise<LoadResult>,
): Promise<LoadResult> {
  const result = await next(url, context);
  // CommonJS is left with source null so Node's own CommonJS loader (and our compile hook) runs it.
  if (ctx === undefined || result.format !== 'module' || result.source == null) return result;
  if (!url.startsWith('file:') || isPatchUrl(url)) return result;
  return { ...result, source: transformModule(ctx, fileURLToPath(url), sourceText(result.source), 'module') };
}
