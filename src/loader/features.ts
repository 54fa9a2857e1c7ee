// Every Node.js version difference the loader knows about, in one table, each row with its reason.
import * as nodeModule from 'node:module';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const atLeast = (maj: number, min: number) => major > maj || (major === maj && minor >= min);
// Each read as `nodeModule.name`: the bundle takes exactly the names read so off node:module (scripts/bundle.mjs).
type Optional = { registerHooks?: unknown; register?: unknown };
const has = (fn: unknown) => typeof fn === 'function';

export interface FeatureRow {
  on: boolean;
  reason: string;
}

export const features = {
  /** module.registerHooks: synchronous, in-thread hooks covering import and require(esm). */
  syncHooks: {
    on: has((nodeModule as Optional).registerHooks) && (atLeast(23, 5) || (major === 22 && minor >= 15)),
    reason:
      'module.registerHooks (22.15, 23.5, 24) runs in the main thread and synchronously, so ESM is instrumented ' +
      'where the registry lives, for import and require(esm) alike',
  },
  /** module.register: the off-thread async ESM hooks, the only ESM hook Node 20 has. */
  asyncHooks: {
    on: has((nodeModule as Optional).register),
    reason:
      'module.register (20.6+) runs load hooks in a separate thread; used for ESM where registerHooks is missing; ' +
      'notes reach the registry through a MessagePort',
  },
  /** CommonJS is instrumented by wrapping Module.prototype._compile on every version. */
  compileHook: {
    on: true,
    reason:
      "tsx's CommonJS path calls module._compile itself, past every load hook; and on Node 20 a load hook that " +
      'supplies CommonJS source loses require.cache (js-runtime.md §1.2) — _compile sees all CommonJS, once',
  },
  /** require(esm) compiles through _compile(content, filename, 'module'). */
  requireEsmViaCompile: {
    on: atLeast(20, 19),
    reason:
      "require(esm) (20.19, 22.12) passes ESM source through Module.prototype._compile with format 'module'; " +
      'the async hooks of Node 20 never see it, so the compile hook instruments it there (registerHooks does on 22+)',
  },
  /** Module.prototype._compile(content, filename, format): the third argument is a format string. */
  compileTakesFormat: {
    on: (major === 20 && minor >= 19) || atLeast(22, 12),
    reason:
      "_compile's third argument became the module's format with require(esm) (20.19, 22.12); before, on 22, it was " +
      "a loadAsESM flag, which a string turns on: `cache warm` compiles CommonJS ahead only where 'commonjs' means it",
  },
  /** require(esm) works (in the main thread and in the hooks thread) while module.register hooks are active. */
  requireEsmUnderAsyncHooks: {
    on: major === 20 && atLeast(20, 19),
    reason:
      'the instrumenter is loaded lazily with require(esm); on 22+ that throws "resolveSync() is not ' +
      'implemented" while module.register hooks are active, so there both threads load it at start',
  },
} satisfies Record<string, FeatureRow>;

/** Which hook instruments ESM in this process: 'sync' (registerHooks) or 'async' (module.register). */
export function esmHookKind(env: NodeJS.ProcessEnv = process.env): 'sync' | 'async' | 'none' {
  // LIVEPATCH_LOADER_HOOKS=async forces the Node 20 path on newer Node: tests cover both paths on one version.
  if (env.LIVEPATCH_LOADER_HOOKS === 'async' && features.asyncHooks.on) return 'async';
  if (features.syncHooks.on) return 'sync';
  return features.asyncHooks.on ? 'async' : 'none';
}
