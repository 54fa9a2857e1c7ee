#!/usr/bin/env node
// The `livepatch` command: parse, dispatch to one command, print, and exit 0/1/2/3 (DESIGN.md §6).
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { LIVEPATCH_VERSION } from '../control/protocol.js';
import { parseArgs, UsageError, type Parsed } from './args.js';
import { install, uninstall } from './install.js';
import { keygen, sign } from './keys.js';
import { disable, enable, force, load, unload } from './patching.js';
import { info, list, log, ps, status, symbols, sysfs } from './reports.js';
import { run } from './run.js';
import { errorJson, EXIT, stdio, type Io } from './session.js';

export const USAGE = `usage: livepatch COMMAND [ARGS] [--pid PID | --name NAME | --all] [--json]

Processes
  ps                        instrumented Node.js processes on this host
  run [--name N] -- CMD...  start CMD (e.g. 'node app.js') with the livepatch loader
  status                    what is patched in each process, since when, from which file

Patches in a process
  list                      loaded patches, as the sysfs-style tree
  symbols [FILTER]          what can be patched (like /proc/kallsyms)
  load PATCH [--timeout S] [--revert-on-stall]
                            register and enable a patch file, wait for the transition
  enable NAME | disable NAME
  unload NAME               disable if needed, wait, and remove
  info NAME                 objects, functions, callbacks, states, hashes, signature
  force NAME                complete a stalled transition now (unsafe)
  log [-f] [--since SEQ]    the process's livepatch event log
  sysfs PATH [VALUE]        read (or write) a file of the sysfs-style tree: 'sysfs fix-1/enabled'

Installed patches (loaded when a process starts)
  install PATCH | uninstall PATCH

Building patches and the kernel (docs/build.md, docs/kernel.md)
  build --old DIR --new DIR | --source DIR --diff FIX.patch | --from PKG@V1 --to PKG@V2  [-o FILE] [--dry-run]
                            make a patch module from a source change, as kpatch-build does
  kernel list|load|enable|disable|unload|force|info|install|uninstall ...
                            the Linux kernel's own livepatch (/sys/kernel/livepatch)

The loader's cache
  cache warm [DIR] [--workers N]
                            instrument the app at DIR ahead of its start (a Docker build, a CI job)

Trust
  keygen [BASE]             new Ed25519 key pair BASE.key / BASE.pub
  sign PATCH --key KEY      write PATCH.sig

Exit codes: 0 done, 1 failed, 2 bad usage, 3 the transition did not finish in time.
See docs/cli.md for every command.`;

function need(p: Parsed, what: string): string {
  const v = p.positionals[0];
  if (v === undefined) throw new UsageError(`'${p.command}' needs ${what}`);
  if (p.positionals.length > 1)
    throw new UsageError(`'${p.command}' takes one ${what}, got ${p.positionals.length}`);
  return v;
}

function none(p: Parsed): void {
  if (p.positionals.length > 0)
    throw new UsageError(`'${p.command}' takes no argument ('${p.positionals[0]}')`);
}

/** Runs one command line; resolves with the exit code. Never throws. */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  // `build` and `kernel` parse their own flags; they are imported only when used, so the builder's parser does not
  // load for every `livepatch ps`.
  if (argv[0] === 'build' || argv[0] === 'kernel') return await delegate(argv[0], argv.slice(1), io);
  if (argv[0] === 'cache') return await cache(argv.slice(1), io);
  let p: Parsed | undefined;
  try {
    p = parseArgs(argv);
    const o = p.options;
    if (p.command === undefined || p.command === 'help' || (o.help && p.command !== 'run')) {
      io.out(USAGE);
      return p.command === undefined && !o.help ? EXIT.usage : EXIT.ok;
    }
    switch (p.command) {
      case 'version':
        io.out(o.json ? JSON.stringify({ version: LIVEPATCH_VERSION }) : LIVEPATCH_VERSION);
        return EXIT.ok;
      case 'ps':
        none(p);
        return await ps(o, io);
      case 'list':
        none(p);
        return await list(o, io);
      case 'symbols':
        return await symbols(o, io, p.positionals[0]);
      case 'info':
        return await info(o, io, need(p, 'a patch NAME'));
      case 'status':
        none(p);
        return await status(o, io);
      case 'log':
        none(p);
        return await log(o, io);
      case 'load':
        return await load(o, io, need(p, 'a PATCH file'));
      case 'enable':
        return await enable(o, io, need(p, 'a patch NAME'));
      case 'disable':
        return await disable(o, io, need(p, 'a patch NAME'));
      case 'unload':
        return await unload(o, io, need(p, 'a patch NAME'));
      case 'force':
        return await force(o, io, need(p, 'a patch NAME'));
      case 'sysfs': {
        const [path, value, extra] = p.positionals;
        if (path === undefined || extra !== undefined) throw new UsageError("'sysfs' takes PATH [VALUE]");
        return await sysfs(o, io, path, value);
      }
      case 'install':
        return install(o, io, need(p, 'a PATCH file'));
      case 'uninstall':
        return uninstall(o, io, need(p, 'a PATCH file name'));
      case 'keygen':
        if (p.positionals.length > 1) throw new UsageError("'keygen' takes at most one BASE name");
        return keygen(o, io, p.positionals[0]);
      case 'sign':
        return sign(o, io, need(p, 'a PATCH file'));
      case 'run':
        none(p);
        return await run(o);
      default:
        throw new UsageError(`unknown command '${p.command}'`);
    }
  } catch (e) {
    const json = p?.options.json === true;
    if (e instanceof UsageError) {
      if (json) io.out(JSON.stringify({ error: { code: 'EUSAGE', message: e.message } }));
      else io.err(`livepatch: ${e.message}\n(see 'livepatch help')`);
      return EXIT.usage;
    }
    if (json) io.out(JSON.stringify(errorJson(e)));
    else io.err(`livepatch: error: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.failed;
  }
}

/** `cache` has flags of its own (--workers, --dev); loaded only when used, as `build` is. */
async function cache(argv: string[], io: Io): Promise<number> {
  const json = argv.includes('--json');
  try {
    return await (await import('./cache.js')).cacheCommand(argv, io);
  } catch (e) {
    if (e instanceof UsageError) {
      if (json) io.out(JSON.stringify({ error: { code: 'EUSAGE', message: e.message } }));
      else io.err(`livepatch: ${e.message}\n(see 'livepatch cache help')`);
      return EXIT.usage;
    }
    if (json) io.out(JSON.stringify(errorJson(e)));
    else io.err(`livepatch: error: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.failed;
  }
}

async function delegate(command: 'build' | 'kernel', argv: string[], io: Io): Promise<number> {
  // They write whole chunks that end lines where they mean to: to the terminal, pass them through untouched.
  const sub =
    io === stdio
      ? {
          stdout: (s: string) => void process.stdout.write(s),
          stderr: (s: string) => void process.stderr.write(s),
        }
      : { stdout: (s: string) => io.out(s), stderr: (s: string) => io.err(s) };
  try {
    if (command === 'build') return await (await import('../build/index.js')).runBuild(argv, sub);
    return await (await import('../kernel/index.js')).runKernel(argv, sub);
  } catch (e) {
    io.err(`livepatch: error: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.failed;
  }
}

// Run only as the program, not when imported (tests import main()); npm's bin link is a symlink.
function isMain(): boolean {
  const invoked = process.argv[1];
  if (invoked === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(invoked)).href;
  } catch {
    return false;
  }
}

if (isMain()) process.exitCode = await main(process.argv.slice(2));
