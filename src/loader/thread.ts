// Which thread livepatch runs in, without loading node:worker_threads where it is not loaded yet.

/**
 * True in the process's main thread. Importing node:worker_threads to ask costs every start ~4 ms of CPU (it loads
 * the streams), and most apps never load it. A worker thread always has it (Node's worker bootstrap loads it, and
 * replaces process.chdir with a function marked `disabled`): when neither sign is there this is the main thread;
 * otherwise node:worker_threads, already loaded, says.
 */
export function isMainThread(): boolean {
  const list = (process as { moduleLoadList?: readonly string[] }).moduleLoadList;
  const loaded = list === undefined || list.includes('NativeModule worker_threads');
  const chdirDisabled = (process.chdir as { disabled?: unknown }).disabled === true;
  if (!loaded && !chdirDisabled) return true;
  return process.getBuiltinModule('node:worker_threads').isMainThread;
}
