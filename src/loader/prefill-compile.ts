// Node's compile cache (22.1+) filled by `livepatch cache warm` without running anything: each module the warm prepares
// is compiled as a start compiles it, under the key a start looks up (its path and its instrumented code), and
// stopped before any of its code runs. A deploy step must never run the app's code (a top-level side effect, a
// connection): each way of stopping is checked once per thread with a canary, and not used if the canary ran.
import Module from 'node:module';
import { pathToFileURL } from 'node:url';
import { features } from './features.js';
import { compileCacheInUse } from './transform.js';

const STOP = Symbol('livepatch: compiled, not run');
type CompileFn = (this: unknown, content: string, filename: string, format?: string) => unknown;
const original = (Module as unknown as { prototype: { _compile: CompileFn } }).prototype._compile;
const NewModule = Module as unknown as new (id: string) => { filename: string };

/**
 * Compiles CommonJS `code` as Node's loader would for `file`, and stops before it runs: the module's `exports` are
 * read after the compile and before the call (lib/internal/modules/cjs/loader.js, `_compile`), and reading them
 * throws. With Node's compile cache on, the code cache V8 made goes into it, under the same key (file, code) a
 * start looks up. Returns whether the code was compiled and not run; never throws.
 */
function compileOnce(file: string, code: string): boolean {
  try {
    const m = new NewModule(file);
    m.filename = file;
    Object.defineProperty(m, 'exports', {
      configurable: true,
      get() {
        throw STOP;
      },
    });
    Reflect.apply(original, m, [code, file, 'commonjs']);
    return false;
  } catch (e) {
    return e === STOP;
  }
}

let safe: boolean | undefined;

/**
 * Whether compileOnce stops before the code runs on this Node: checked once per thread with a module that would
 * say so if it ran. A deploy step must never run the app's code (a top-level side effect, a connection): on a Node
 * whose `_compile` reads its module's exports later, nothing is compiled.
 */
function compileStopsBeforeRunning(): boolean {
  if (safe !== undefined) return safe;
  // One name and one text: the canary's own compile cache entry is the same file at every warm.
  const flag = '__livepatchCompileCanary';
  const g = globalThis as Record<string, unknown>;
  delete g[flag];
  const stopped = compileOnce('/livepatch-compile-canary.js', `globalThis.${flag} = true;`);
  safe = stopped && g[flag] !== true;
  delete g[flag];
  return safe;
}

/**
 * Puts the CommonJS module `file`, as `code`, into Node's compile cache when it is on in this thread, without running
 * it: the first start after `cache warm` then finds both livepatch's entry and V8's code for it. Never throws.
 */
export function compileWithoutRunning(file: string, code: string): boolean {
  return (
    features.compileTakesFormat.on &&
    compileCacheInUse() &&
    compileStopsBeforeRunning() &&
    compileOnce(file, code)
  );
}

/** Writes what compileWithoutRunning compiled (Node writes its compile cache only at a clean exit, or when asked). */
export function flushCompiled(): void {
  try {
    (Module as { flushCompileCache?: () => void }).flushCompileCache?.();
  } catch {}
}

// --- ES modules -----------------------------------------------------------------------------------------------

/** The specifier no module can import: resolving it fails the link of the graph that asks for it. */
const STOP_SPECIFIER = 'livepatch-compile:stop';
const ROOT = 'livepatch-compile:root:';

type SyncHooks = {
  resolve(
    specifier: string,
    context: { parentURL?: string },
    next: (s: string, c?: unknown) => { url: string },
  ): { url: string; shortCircuit?: boolean };
  load(url: string, context: unknown, next: (u: string, c?: unknown) => unknown): unknown;
};
type RegisterHooks = (hooks: SyncHooks) => { deregister(): void };

/** The modules being compiled ahead in this thread, by URL, with the code to compile. */
const pending = new Map<string, string>();
let hooked = false;

/**
 * The hooks that stop a module before it runs. An ES module graph runs only once every module in it is linked, and
 * each module here is imported through a root that also imports STOP, whose resolution throws; each import of the
 * module itself fails too. Node compiles the module as it creates its job, before the link fails: its code goes into
 * the compile cache and none of the graph is evaluated. The module's code is the one given, not the file's.
 */
function hookOnce(): boolean {
  if (hooked) return true;
  const registerHooks = (Module as unknown as { registerHooks?: RegisterHooks }).registerHooks;
  if (!features.syncHooks.on || typeof registerHooks !== 'function') return false;
  registerHooks({
    resolve(specifier, context, next) {
      if (specifier === STOP_SPECIFIER) throw new Error('livepatch: compiled, not run');
      if (specifier.startsWith(ROOT)) return { url: specifier, shortCircuit: true };
      if (context.parentURL !== undefined && pending.has(context.parentURL))
        throw new Error('livepatch: compiled, not run');
      return next(specifier, context);
    },
    load(url, context, next) {
      const code = pending.get(url);
      if (code !== undefined) return { format: 'module', source: code, shortCircuit: true };
      if (url.startsWith(ROOT)) {
        const target = decodeURIComponent(url.slice(ROOT.length));
        return {
          format: 'module',
          source: `import ${JSON.stringify(target)};\nimport ${JSON.stringify(STOP_SPECIFIER)};\n`,
          shortCircuit: true,
        };
      }
      return next(url, context);
    },
  });
  hooked = true;
  return true;
}

/** Compiles `code` as the ES module at `url` and stops before it runs. True when the import failed as it must. */
async function compileModuleOnce(url: string, code: string): Promise<boolean> {
  pending.set(url, code);
  try {
    await import(ROOT + encodeURIComponent(url));
    return false;
  } catch {
    return true;
  } finally {
    pending.delete(url);
  }
}

let esmSafe: Promise<boolean> | undefined;

/** Whether compileModuleOnce stops a module that imports nothing before it runs: checked once per thread. */
function modulesStopBeforeRunning(): Promise<boolean> {
  esmSafe ??= (async () => {
    const flag = '__livepatchModuleCanary';
    const g = globalThis as Record<string, unknown>;
    delete g[flag];
    const stopped = await compileModuleOnce(
      'file:///livepatch-compile-canary.mjs',
      `globalThis.${flag} = true;\nexport {};\n`,
    );
    const safe = stopped && g[flag] !== true;
    delete g[flag];
    return safe;
  })();
  return esmSafe;
}

/**
 * Puts the ES module `file`, as `code`, into Node's compile cache when it is on in this thread (with
 * module.registerHooks: 22.15+, 24, 26), without running it or anything it imports. Never throws.
 */
export async function compileModuleWithoutRunning(file: string, code: string): Promise<boolean> {
  try {
    if (!compileCacheInUse() || !hookOnce() || !(await modulesStopBeforeRunning())) return false;
    return await compileModuleOnce(pathToFileURL(file).href, code);
  } catch {
    return false;
  }
}
