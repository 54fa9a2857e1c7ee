// What every `livepatch kernel` subcommand receives (options and output streams) and what it returns.
import type { KernelOptions } from './args.js';

export interface KernelIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export interface KernelContext extends KernelOptions {
  io: KernelIo;
}

/**
 * A subcommand's result: the exit code (DESIGN §6), the JSON document for `--json`, and the lines for people.
 * Failures that stop a command are thrown as LivepatchError instead; this is for results, including a timeout.
 */
export interface KernelOutcome {
  code: 0 | 1 | 3;
  json: Record<string, unknown>;
  text: string[];
}

/** Progress and warnings go to stderr so that stdout stays one JSON document under --json. */
export function note(ctx: KernelContext, line: string): void {
  ctx.io.stderr(`${line}\n`);
}
