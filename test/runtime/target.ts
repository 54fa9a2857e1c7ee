// Drives a target process (test/fixtures/runtime/target.mjs): JSON commands on its stdin, the transcript
// and the answers on its stdout. The kernel selftests' functions.sh, for a Node.js process.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { fixture } from '../helpers.js';

export interface Target {
  port: number;
  /** Runs one command; resolves with its answer (which may carry `error`, a LivepatchError code). */
  cmd(op: string, args?: Record<string, unknown>): Promise<Record<string, any>>;
  /** Starts a transcript, as start_test's canary does: check() returns the lines printed since. */
  start(): void;
  transcript(): string[];
  get(path: string): Promise<string>;
  close(): Promise<void>;
}

export async function startTarget(env: Record<string, string> = {}): Promise<Target> {
  const proc = spawn(process.execPath, [fixture('runtime', 'target.mjs')], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  let err = '';
  let mark = 0;
  const pending = new Map<number, (v: Record<string, any>) => void>();
  let listening: (port: number) => void;
  const port = new Promise<number>((resolve) => (listening = resolve));
  let buf = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const done = /^#done (\d+) (.*)$/.exec(line);
      if (done) {
        pending.get(Number(done[1]))?.(JSON.parse(done[2]!) as Record<string, any>);
        pending.delete(Number(done[1]));
      } else if (line.startsWith('#listening ')) listening(Number(line.slice(11)));
      else out += `${line}\n`;
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  void exited.then(() => {
    for (const r of pending.values()) r({ error: 'EXITED', message: err });
  });
  const timeout = setTimeout(() => proc.kill('SIGKILL'), 60_000);
  timeout.unref();
  let nextId = 1;
  const p = await Promise.race([port, exited.then(() => Promise.reject(new Error(`target exited: ${err}`)))]);
  return {
    port: p,
    cmd(op, args = {}) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        proc.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
      });
    },
    start() {
      mark = out.length;
    },
    transcript() {
      return out
        .slice(mark)
        .split('\n')
        .filter((l) => l !== '');
    },
    get(path) {
      return new Promise((resolve, reject) => {
        request({ host: '127.0.0.1', port: p, path, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve(body));
        })
          .on('error', reject)
          .end();
      });
    },
    async close() {
      proc.stdin.end();
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
      clearTimeout(timeout);
    },
  };
}

/** The kernel selftests' shorthands (functions.sh), with livepatch's words. */
export const EN = (p: string, cbs: string[] = [], post: string[] = []) => [
  `livepatch: enabling patch '${p}'`,
  `livepatch: '${p}': initializing patching transition`,
  ...cbs,
  `livepatch: '${p}': starting patching transition`,
  `livepatch: '${p}': completing patching transition`,
  ...post,
  `livepatch: '${p}': patching complete`,
];
export const DIS = (p: string, cbs: string[] = [], post: string[] = []) => [
  `% livepatch disable ${p}`,
  `livepatch: '${p}': initializing unpatching transition`,
  ...cbs,
  `livepatch: '${p}': starting unpatching transition`,
  `livepatch: '${p}': completing unpatching transition`,
  ...post,
  `livepatch: '${p}': unpatching complete`,
];
export const LOAD = (p: string, params = '') => `% livepatch load ${p}${params ? ` ${params}` : ''}`;
export const RM = (p: string) => `% livepatch unload ${p}`;
