// One benchmark server process: spawned pinned to CPU 1 (the load generator keeps CPU 0), ready when it prints
// its `listening PORT …` line. Shared by the HTTP and apps suites.
import { spawn } from 'node:child_process';

/**
 * Starts `node ...argv` with `env`, pinned with taskset when `pin` (taskset execs node, so the pid is the
 * server's: children would otherwise inherit the driver's CPU 0 affinity). Resolves with the process, the
 * `listening` line's match and the stderr so far; rejects if it exits or is not listening within `timeoutMs`.
 */
export function startPinned({ suite, name, argv, env, pin, timeoutMs }) {
  const proc = spawn(
    pin ? 'taskset' : process.execPath,
    pin ? ['-c', '1', process.execPath, ...argv] : argv,
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${suite}: '${name}' did not start:\n${err}`));
    }, timeoutMs);
    proc.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = out.match(/listening (\d+)(?: (\S+))?/);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, port: m[1], extra: m[2], stderr: () => err });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${suite}: '${name}' exited (${code}) before listening:\n${err}`));
    });
  });
}
