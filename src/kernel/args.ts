// The `livepatch kernel` command line: subcommands, options and their defaults, and what bad usage says.
import { parseArgs } from 'node:util';
import type { KernelPaths } from './sysfs.js';

export const usage = `usage: livepatch kernel <command> [options]

commands:
  list                      loaded patches, their objects and functions; tasks blocking a transition
  load MODULE.ko            insert a livepatch module and wait for its transition
  enable NAME | disable NAME
                            write the patch's 'enabled' (during a transition: reverse it)
  unload NAME               disable the patch if needed, wait, and remove its module (rmmod)
  force NAME                force the running transition to complete (unsafe: the module can never be removed)
  info MODULE.ko            is it a livepatch module, its vermagic against the running kernel, is it signed
  install MODULE.ko         load the module at every boot of the kernel it was built for
  uninstall NAME            stop loading it at boot

options:
  --json                    print one JSON document on stdout
  --timeout SECONDS         how long to wait for a transition (default 60)
  --reverse-on-timeout      load/enable/disable: reverse a transition that did not finish in time
  --kernel-release VERSION  install/uninstall/list: the kernel to act for (default: the running one)
  --sysfs-root DIR          use DIR instead of /sys      --proc-root DIR   use DIR instead of /proc
  --root DIR                install/uninstall/list: use DIR instead of / for /var/lib and /etc
  --insmod PATH, --rmmod PATH
                            the commands that insert and remove modules (default: insmod, rmmod from PATH)

exit codes: 0 done, 1 failed, 2 bad usage, 3 the transition did not finish in time`;

export type Subcommand =
  'list' | 'load' | 'enable' | 'disable' | 'unload' | 'force' | 'info' | 'install' | 'uninstall';

export interface KernelOptions {
  command: Subcommand;
  /** The MODULE.ko or NAME operand, when the command takes one. */
  operand: string | undefined;
  json: boolean;
  paths: KernelPaths;
  timeoutMs: number;
  pollMs: number;
  reverseOnTimeout: boolean;
  kernelRelease: string | undefined;
  insmod: string;
  rmmod: string;
}

/** Bad usage: the caller prints the message and the usage, and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const operandOf: Record<Subcommand, string | null> = {
  list: null,
  load: 'MODULE.ko',
  enable: 'NAME',
  disable: 'NAME',
  unload: 'NAME',
  force: 'NAME',
  info: 'MODULE.ko',
  install: 'MODULE.ko',
  uninstall: 'NAME',
};

/** Parses argv (after `kernel`). Throws UsageError; `null` means help was asked for. */
export function parseKernelArgs(argv: string[]): KernelOptions | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '60' },
        'poll-ms': { type: 'string', default: '250' },
        'reverse-on-timeout': { type: 'boolean', default: false },
        'kernel-release': { type: 'string' },
        'sysfs-root': { type: 'string', default: '/sys' },
        'proc-root': { type: 'string', default: '/proc' },
        root: { type: 'string', default: '/' },
        insmod: { type: 'string', default: 'insmod' },
        rmmod: { type: 'string', default: 'rmmod' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals[0] === 'help') return null;
  const [command, operand, ...extra] = positionals;
  if (command === undefined) throw new UsageError('missing command');
  if (!Object.hasOwn(operandOf, command)) throw new UsageError(`unknown command '${command}'`);
  const sub = command as Subcommand;
  const wants = operandOf[sub];
  if (wants !== null && operand === undefined) throw new UsageError(`'${sub}' needs ${wants}`);
  if ((wants === null && operand !== undefined) || extra.length > 0) {
    throw new UsageError(`unexpected argument '${wants === null ? operand : extra[0]}'`);
  }
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout < 0)
    throw new UsageError(`--timeout expects seconds, got '${values.timeout}'`);
  const pollMs = Number(values['poll-ms']);
  if (!Number.isInteger(pollMs) || pollMs <= 0)
    throw new UsageError(`--poll-ms expects milliseconds, got '${values['poll-ms']}'`);
  return {
    command: sub,
    operand,
    json: values.json,
    paths: { sysfs: values['sysfs-root'], proc: values['proc-root'], root: values.root },
    timeoutMs: timeout * 1000,
    pollMs,
    reverseOnTimeout: values['reverse-on-timeout'],
    kernelRelease: values['kernel-release'],
    insmod: values.insmod,
    rmmod: values.rmmod,
  };
}
