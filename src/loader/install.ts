// Puts the loader in place: configuration, instrumenter, cache, the ESM hook chosen by the feature table, and
// the CommonJS compile hook. Called once per process by register.ts.
import * as nodeModule from 'node:module';
import type { ModuleNote, Registry } from '../runtime/abi.js';
import { openCache } from './cache.js';
import { loadConfig, type LoaderConfig } from './config.js';
import { esmHookKind, features } from './features.js';
import type { AsyncHooksData } from './hooks-async.js';
import { installCompileHook } from './hooks-cjs.js';
import type { LoaderHandle } from './handle.js';
import { installSyncHooks, selfResolution } from './hooks-sync.js';
import { lazyInstrumenter } from './instrumenter.js';
import { debug } from './log.js';
import { quickSourceText } from '../instrument/source-text-quick.js';
import { installSourceText } from './source-text.js';
import { distrustCache, type TransformContext } from './transform.js';

/**
 * Installs the hooks; modules loaded from now on are instrumented and registered with `registry`. Throws when
 * the loader cannot work at all (no instrumenter, no hook API): the caller warns and the app runs as is.
 */
export async function installLoader(
  registry: Registry,
  env: NodeJS.ProcessEnv = process.env,
  handle?: LoaderHandle,
): Promise<LoaderConfig> {
  const config = loadConfig(env);
  const note = (n: ModuleNote) => {
    try {
      registry.noteModule(n);
    } catch {
      // A registry that fails to take a note must not fail the module's load.
    }
  };
  const ctx: TransformContext = {
    config,
    instrumenter: lazyInstrumenter((real) => distrustCache(ctx, real)),
    cache: config.cacheDir === null ? null : openCache(config.cacheDir, config.cacheDirShared),
    note,
  };
  const kind = esmHookKind(env);
  if (kind === 'none') throw new Error(`Node.js ${process.version} has no module hooks`);
  if (kind === 'sync') {
    installSyncHooks(ctx);
    if (handle !== undefined) handle.selfResolve = selfResolution(config.selfRoot);
  } else {
    // The hooks thread's resolve hook finds `livepatch` for patch modules all the time: nothing to turn on.
    // Before the hooks exist, as it cannot be loaded lazily from this thread once they do.
    if (!features.requireEsmUnderAsyncHooks.on) await ctx.instrumenter.preload();
    // Loaded only here: node:worker_threads costs a start ~4 ms, and only this path (Node 20) needs it.
    const { MessageChannel } = process.getBuiltinModule('node:worker_threads');
    const { port1, port2 } = new MessageChannel();
    port1.on('message', note);
    port1.unref(); // notes must never keep the app alive
    // The hooks thread uses the cache only if this thread could open it: a bad cache dir is warned about once.
    const data: AsyncHooksData = {
      config: { ...config, cacheDir: ctx.cache === null ? null : config.cacheDir },
      port: port2,
    };
    nodeModule.register(new URL('./hooks-async.js', import.meta.url), { data, transferList: [port2] });
  }
  installCompileHook(ctx, kind !== 'sync');
  if (config.sourceText === 'original') {
    // Most texts are answered without the instrumenter (and acorn), which loads only for the rest.
    installSourceText((text) => quickSourceText(text) ?? ctx.instrumenter.sourceText(text));
  }
  debug(`hooks '${kind}'+compile; app root '${config.appRoot}'; cache '${ctx.cache?.dir ?? 'off'}'`);
  return config;
}
