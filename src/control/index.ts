// The control server's entry, called by the loader at start-up: socket, metadata, installed patches. Never throws.
// Start-up pays only for the socket and the metadata file: the commands (and node:crypto, which patch checks
// need) load at the first request, or at start when there are installed patches or trusted keys.
import { lstatSync, mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename, extname } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { ControlState } from './commands.js';
import {
  checkPrivateDir,
  controlDir,
  ensurePrivateDir,
  installDir,
  metaPath,
  privatePatchDir,
  socketPath,
} from './paths.js';
import { LIVEPATCH_VERSION, PROTOCOL_VERSION, type ProcessMeta } from './protocol.js';
import { listenControl, makeSerialize, type Handlers } from './server.js';
import { clusterPrimaryPid, primaryIsLive, takePrimaryPatches } from './cluster.js';
import type { ControlTarget } from './target.js';
import { isLivepatchError } from '../errors.js';
import { getRuntime } from '../runtime/index.js';
import { isMainThread } from '../loader/thread.js';
import { logPath, ThreadCoordinator } from './threads.js';

let started: Promise<void> | undefined;

// writeSync, as the loader's warnings: a warning printed just before the process exits must not be lost.
function warn(message: string): void {
  try {
    writeSync(2, `livepatch: warning: ${message}\n`);
  } catch {}
}

/** The name `ps` shows: `$LIVEPATCH_NAME`, else the main script's base name, else the executable's. */
export function processName(env: NodeJS.ProcessEnv = process.env, argv = process.argv): string {
  const own = env['LIVEPATCH_NAME'];
  if (own !== undefined && own !== '') return own;
  const main = argv[1];
  if (main !== undefined) return basename(main, extname(main));
  return basename(process.execPath);
}

function resolveTarget(): ControlTarget | null {
  try {
    return getRuntime();
  } catch (e) {
    warn(`the livepatch runtime is not available: ${(e as Error).message}`);
    return null;
  }
}

/**
 * Starts this process's control server and loads the installed patches. Called once by the loader,
 * before the app's code runs; later calls return the same promise. Never throws and never keeps the
 * process alive: on any problem it warns once on stderr and the app runs unpatchable.
 */
export function startControl(): Promise<void> {
  started ??= start().catch((e: unknown) => warn(`control server not started: ${(e as Error).message}`));
  return started;
}

async function start(): Promise<void> {
  // One control server per process: a worker thread shares the pid, and its socket would replace ours.
  if (!isMainThread()) return;
  const env = process.env;
  const dir = controlDir(env);
  try {
    ensurePrivateDir(dir);
  } catch (e) {
    warn(`control server refused to start: ${(e as Error).message}`);
    return;
  }
  const pid = process.pid;
  const sock = socketPath(dir, pid);
  const patchDir = privatePatchDir(dir, pid);
  // The private directory for received patch sources. Usually absent: one mkdir. One left by an earlier
  // process with this pid is emptied first (rmSync's recursive walk is a module and a few syscalls to load).
  try {
    mkdirSync(patchDir, { mode: 0o700 });
  } catch {
    rmSync(patchDir, { recursive: true, force: true });
  }
  ensurePrivateDir(patchDir);

  let keys: Map<string, KeyObject> | null = null;
  // The variable's name is TRUSTED_KEYS_ENV in trust.ts, spelt out here so that trust.ts loads only when it is set.
  const keysPath = env['LIVEPATCH_TRUSTED_KEYS'];
  if (keysPath !== undefined && keysPath !== '') {
    try {
      const { loadTrustedKeys } = await import('./trust.js');
      keys = loadTrustedKeys(keysPath);
    } catch (e) {
      // Enforcing was asked for: fail closed, with no key nothing loads.
      keys = new Map();
      warn(`enforcing mode with no trusted key, no patch will load: ${(e as Error).message}`);
    }
  }

  // A cluster worker whose primary runs under livepatch takes the primary's patches first, then the installed ones
  // it does not have (a patch installed after the primary started is for every process started since).
  const primary = clusterPrimaryPid();
  const fromPrimary = primary !== undefined && primaryIsLive(dir, primary) ? primary : undefined;
  const meta: ProcessMeta = {
    pid,
    name: processName(env),
    argv: process.argv.slice(),
    node: process.version,
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    livepatch: LIVEPATCH_VERSION,
    protocol: PROTOCOL_VERSION,
    socket: sock,
    ...(primary !== undefined ? { clusterPrimary: primary } : {}),
  };
  const runtime = resolveTarget();
  const state: ControlState = {
    meta,
    target: () => runtime,
    patchDir,
    keys,
    origins: new Map(),
    seq: 0,
    threads: new ThreadCoordinator(logPath(dir, pid), pid, () => runtime),
  };

  process.once('exit', () => {
    for (const f of [sock, metaPath(dir, pid)]) {
      try {
        unlinkSync(f);
      } catch {}
    }
    try {
      rmSync(patchDir, { recursive: true, force: true });
    } catch {}
  });

  let commands: Promise<Handlers> | undefined;
  const loadCommands = (): Promise<Handlers> =>
    (commands ??= import('./commands.js').then((c) => c.makeHandlers(state)));

  // Installed patches first, before the socket exists: nothing can race them, and the app starts patched.
  if (runtime !== null && fromPrimary === undefined) await loadInstalled(state, env, loadCommands);

  const serialize = makeSerialize();
  await listenControl({
    socket: sock,
    hello: {
      pid,
      version: LIVEPATCH_VERSION,
      enforcing: keys !== null,
      keys: keys === null ? [] : [...keys.keys()],
    },
    handlers: loadCommands,
    serialize,
  });
  const tmp = `${metaPath(dir, pid)}.tmp`;
  writeFileSync(tmp, JSON.stringify(meta) + '\n', { mode: 0o600 });
  renameSync(tmp, metaPath(dir, pid));

  // A cluster worker reads its primary's patches only once it can be found: a change the CLI makes to the primary
  // after this read reaches this process over its socket, and one made before is in what it reads. Commands that
  // arrive meanwhile wait their turn on the same chain, and find the change made ("already loaded").
  if (runtime !== null && fromPrimary !== undefined)
    await serialize(async () => {
      try {
        const r = await takePrimaryPatches(state, await loadCommands(), dir, fromPrimary);
        for (const f of r.failed)
          warn(`${f.op} of patch '${f.name}' from cluster primary ${fromPrimary} failed here: ${f.message}`);
      } catch (e) {
        warn(`the patches of cluster primary ${fromPrimary} were not taken: ${(e as Error).message}`);
      }
      await loadInstalled(state, env, loadCommands);
    });
}

/** Loads the installed patches; one that fails is skipped with a warning and the app still starts. */
async function loadInstalled(
  state: ControlState,
  env: NodeJS.ProcessEnv,
  loadCommands: () => Promise<Handlers>,
): Promise<void> {
  // The kill switch (like kpatch.enable=0): a service that misbehaves with an installed patch restarts without it.
  if (env['LIVEPATCH_INSTALL_DIR'] === 'off') return;
  const dir = installDir(env);
  let patches;
  try {
    ensureReadablePrivate(dir);
    const { readInstalled } = await import('./patches.js');
    const found = readInstalled(dir);
    for (const r of found.refused) warn(`installed patch '${r.file}' skipped: ${r.reason}`);
    patches = found.patches;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
      warn(`installed patches not loaded: ${(e as Error).message}`);
    return;
  }
  if (patches.length === 0) return;
  await loadCommands();
  const { loadReceived } = await import('./commands.js');
  for (const p of patches) {
    try {
      await loadReceived(state, p, 'install');
    } catch (e) {
      warn(`installed patch '${p.file}' skipped: ${isLivepatchError(e) ? e.message : String(e)}`);
    }
  }
}

/** The install directory holds code we will run: ours or root's, and writable by nobody else. */
function ensureReadablePrivate(dir: string): void {
  // A missing directory throws ENOENT: nothing is installed, which is not worth a warning.
  checkPrivateDir(dir, lstatSync(dir), undefined, true);
}
