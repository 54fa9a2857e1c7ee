// The `livepatch/register` entry (`node --import livepatch/register app.js`): registry, hooks, control socket,
// all before the app's first line runs. It never stops the app: a failure is one warning and the app runs as is.
import { ABI_VERSION, REGISTRY_KEY, type Registry } from '../runtime/abi.js';
import { claimLoader } from './handle.js';
import { debug, now, warn } from './log.js';
import { isMainThread } from './thread.js';

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function runtimeRegistry(): Promise<Registry> {
  // abi.md §4: a registry already there (another copy of livepatch) is the one that patches.
  const existing = (globalThis as Record<symbol, unknown>)[REGISTRY_KEY] as Registry | undefined;
  if (existing !== undefined) return existing;
  // Imported here, not at the top: a failure while loading livepatch itself must be a warning, not a crash.
  const { installRegistry } = await import('../runtime/registry.js');
  return installRegistry();
}

/** In a worker thread: the patches the process has are applied here before the worker's code runs. */
async function joinThreads(): Promise<void> {
  try {
    const [{ startThreadAgent }, { getRuntime }] = await Promise.all([
      import('../control/threads.js'),
      import('../runtime/index.js'),
    ]);
    const { threadId } = process.getBuiltinModule('node:worker_threads');
    await startThreadAgent(getRuntime(), threadId);
  } catch (e) {
    warn(`this worker thread cannot be patched (${reason(e)})`);
  }
}

async function main(): Promise<void> {
  const env = process.env;
  if (env.LIVEPATCH_DISABLE === '1' || env.LIVEPATCH_DISABLE === 'true') return;
  // Before 20.16 the bundle has no builtins to use (scripts/bundle.mjs), and those versions lack hooks the loader
  // needs anyway: say so with what needs no import, and let the app run.
  if (typeof process.getBuiltinModule !== 'function') {
    console.error(
      `livepatch: Node.js ${process.version} is not supported (20.19+, 22.12+); running uninstrumented`,
    );
    return;
  }
  const handle = claimLoader();
  if (handle === undefined) return; // imported twice (NODE_OPTIONS and the command line): hooks once

  const t0 = now();
  let registry: Registry;
  try {
    registry = await runtimeRegistry();
    if (registry.abi !== ABI_VERSION) {
      throw new Error(
        `the registry of livepatch ${registry.version} speaks ABI ${registry.abi}, not ${ABI_VERSION}`,
      );
    }
  } catch (e) {
    warn(`cannot start the runtime (${reason(e)}); running uninstrumented`);
    return;
  }
  const t1 = now();
  // A worker thread (which inherits --import) gets its own registry and instrumented modules; the control socket
  // is per process (named by pid), so only the main thread serves it, and each worker replays the main thread's
  // patch changes (src/control/threads.ts).
  // Its code is loaded before the hooks are in place: on Node 20 every import after module.register is a round
  // trip to the hooks thread (the control server's ~20 modules cost ~20 ms of CPU that way).
  type Control = typeof import('../control/index.js');
  const control: Promise<Control> | undefined = isMainThread() ? import('../control/index.js') : undefined;
  // Settled before the hooks go in; a failure is reported below, after the loader is in place.
  await control?.catch(() => {});
  try {
    // Imported here so that even a broken installation of livepatch is a warning, not an app that cannot start.
    const { installLoader } = await import('./install.js');
    await installLoader(registry, env, handle);
  } catch (e) {
    warn(`cannot install the loader (${reason(e)}); running uninstrumented`);
    return;
  }
  const t2 = now();
  if (control !== undefined) {
    try {
      const { startControl } = await control;
      await startControl();
    } catch (e) {
      warn(`cannot start the control server (${reason(e)}); patches cannot be loaded into this process`);
    }
  } else await joinThreads();
  const ms = (a: number, b: number) => (b - a).toFixed(1);
  const t3 = now();
  debug(`started in ${ms(t0, t3)} ms (runtime ${ms(t0, t1)}, hooks ${ms(t1, t2)}, control ${ms(t2, t3)})`);
}

await main().catch((e: unknown) => warn(`loader failed (${reason(e)}); running uninstrumented`));
