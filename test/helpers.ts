// Helpers shared by the integration tests: paths, temporary projects, and child Node processes that clean up.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/<part>/, three levels below). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/dist\/?$/, '');
export const distRoot = join(repoRoot, 'dist');
/** Absolute path of the loader entry, for `node --import <this>`. */
export const registerEntry = join(distRoot, 'src/loader/register.js');
/** Absolute path of the CLI entry. */
export const cliEntry = join(distRoot, 'src/cli/main.js');

export function fixture(...parts: string[]): string {
  return join(repoRoot, 'test/fixtures', ...parts);
}

/**
 * Makes a temporary directory holding the given files (path → contents), removed by the returned `cleanup`.
 * Use with `t.after(project.cleanup)`.
 */
export function tmpProject(
  files: Record<string, string>,
  prefix = 'lp-test-',
): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const [name, text] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stdout has matched `re`; rejects on exit or after `ms`. */
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  kill: () => void;
}

/** Starts `node ...args` with the same Node.js binary as the test runner. */
export function spawnNode(args: string[], options: SpawnOptions = {}): Child {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const w of [...waiters]) {
      const m = out.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    },
    waitFor(re, ms = 15_000) {
      const m = out.match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${re} in stdout:\n${out}\nstderr:\n${err}`)),
          ms,
        );
        const done = (v: RegExpMatchArray) => {
          clearTimeout(timer);
          resolve(v);
        };
        waiters.push({ re, resolve: done });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before ${re}; stdout:\n${out}\nstderr:\n${err}`));
        });
      });
    },
  };
}
