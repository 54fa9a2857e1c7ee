// `livepatch kernel …`: the entry the main CLI dispatches to; parses, runs one subcommand, prints, returns the exit code.
import { isLivepatchError } from '../errors.js';
import { parseKernelArgs, usage, UsageError } from './args.js';
import type { KernelContext, KernelIo, KernelOutcome } from './context.js';
import { info } from './info.js';
import { install, uninstall } from './install.js';
import { list } from './list.js';
import { load } from './load.js';
import { disable, enable, force } from './state.js';
import { unload } from './unload.js';

export type { KernelIo } from './context.js';

function dispatch(ctx: KernelContext): KernelOutcome | Promise<KernelOutcome> {
  const operand = ctx.operand ?? '';
  switch (ctx.command) {
    case 'list':
      return list(ctx);
    case 'load':
      return load(ctx, operand);
    case 'enable':
      return enable(ctx, operand);
    case 'disable':
      return disable(ctx, operand);
    case 'unload':
      return unload(ctx, operand);
    case 'force':
      return force(ctx, operand);
    case 'info':
      return info(ctx, operand);
    case 'install':
      return install(ctx, operand);
    case 'uninstall':
      return uninstall(ctx, operand);
  }
}

/**
 * Runs `livepatch kernel <argv…>`. Never throws: failures are printed (as `{"error":…}` under --json) and
 * mapped to DESIGN §6's exit codes — 0 done, 1 failed, 2 bad usage, 3 a transition did not finish in time.
 */
export async function runKernel(argv: string[], io: KernelIo): Promise<number> {
  const json = argv.includes('--json');
  let ctx: KernelContext;
  try {
    const options = parseKernelArgs(argv);
    if (options === null) {
      io.stdout(`${usage}\n`);
      return 0;
    }
    ctx = { ...options, io };
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (json) io.stdout(`${JSON.stringify({ error: { code: 'EUSAGE', message: e.message } })}\n`);
    io.stderr(`livepatch kernel: ${e.message}\n${usage}\n`);
    return 2;
  }
  try {
    const outcome = await dispatch(ctx);
    if (ctx.json) io.stdout(`${JSON.stringify(outcome.json)}\n`);
    else if (outcome.text.length > 0) io.stdout(`${outcome.text.join('\n')}\n`);
    return outcome.code;
  } catch (e) {
    if (!isLivepatchError(e)) {
      const message = e instanceof Error ? e.message : String(e);
      if (ctx.json) io.stdout(`${JSON.stringify({ error: { code: 'EINTERNAL', message } })}\n`);
      io.stderr(`livepatch kernel: internal error: ${e instanceof Error ? (e.stack ?? message) : message}\n`);
      return 1;
    }
    if (ctx.json)
      io.stdout(`${JSON.stringify({ error: { code: e.code, message: e.message, details: e.details } })}\n`);
    else io.stderr(`livepatch kernel: error: ${e.message}\n`);
    return 1;
  }
}
