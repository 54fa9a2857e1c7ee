// `livepatch run -- CMD...`: starts a command with the loader preloaded into every Node.js process it runs.
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LivepatchError } from '../errors.js';
import { UsageError, type Options } from './args.js';

/** dist/src/cli/run.js → dist/src/loader/register.js */
export const registerFile = fileURLToPath(new URL('../loader/register.js', import.meta.url));

/**
 * Runs `o.rest` with `--import <loader>` added to NODE_OPTIONS (so `npm start` and child processes are
 * covered too) and `--name` passed as LIVEPATCH_NAME. Resolves with the child's exit code; signals sent
 * to this process are passed on.
 */
export function run(o: Options): Promise<number> {
  const [cmd, ...args] = o.rest;
  if (cmd === undefined)
    throw new UsageError("'run' needs a command after '--', e.g. 'livepatch run -- node app.js'");
  const importOpt = `--import=${pathToFileURL(registerFile).href}`;
  const env = {
    ...process.env,
    NODE_OPTIONS: [process.env['NODE_OPTIONS'], importOpt].filter(Boolean).join(' '),
    ...(o.name !== undefined ? { LIVEPATCH_NAME: o.name } : {}),
  };
  const child = spawn(cmd, args, { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new LivepatchError('ENOENT', `cannot run '${cmd}': ${e.message}`)));
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1));
    });
  });
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[sig];
}
