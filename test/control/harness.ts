// Test harness for control and CLI tests: a private control directory, an app under the loader, the real CLI.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { cliEntry, fixture, registerEntry, spawnNode, type Child } from '../helpers.js';

export interface LpEnv {
  root: string;
  /** The control directory the processes and the CLI agree on. */
  controlDir: string;
  installDir: string;
  env: NodeJS.ProcessEnv;
}

/** A fresh XDG_RUNTIME_DIR and install directory, removed after the test. */
export function lpEnv(t: TestContext, extra: NodeJS.ProcessEnv = {}): LpEnv {
  const root = mkdtempSync(join(tmpdir(), 'lp-ctl-'));
  const run = join(root, 'run');
  mkdirSync(run, { mode: 0o700 });
  chmodSync(root, 0o755); // other uids must reach run/ to be refused by its own mode, not by ours
  const installDir = join(root, 'installed');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_RUNTIME_DIR: run,
    LIVEPATCH_INSTALL_DIR: installDir,
    LIVEPATCH_CACHE_DIR: 'off',
    ...extra,
  };
  delete env['LIVEPATCH_TRUSTED_KEYS'];
  if (extra['LIVEPATCH_TRUSTED_KEYS'] !== undefined)
    env['LIVEPATCH_TRUSTED_KEYS'] = extra['LIVEPATCH_TRUSTED_KEYS'];
  delete env['NODE_OPTIONS'];
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return { root, controlDir: join(run, 'livepatch'), installDir, env };
}

export interface App {
  child: Child;
  pid: number;
  port: number;
}

/** Starts test/fixtures/cli/app/server.js under the loader; killed after the test. */
export async function startApp(t: TestContext, lp: LpEnv, env: NodeJS.ProcessEnv = {}): Promise<App> {
  const child = spawnNode(['--import', registerEntry, fixture('cli/app/server.js')], {
    env: { ...lp.env, ...env },
  });
  t.after(() => child.kill());
  const m = await child.waitFor(/port (\d+)/);
  return { child, pid: child.proc.pid as number, port: Number(m[1]) };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `livepatch` CLI as a child process. */
export function cli(
  lp: LpEnv,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; uid?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cliEntry, ...args], {
      env: { ...lp.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
    });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** One GET over a fresh connection; resolves with the status and body. */
export function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Runs the CLI and parses its --json stdout; a failure to parse shows the exit code and stderr. */
export async function cliJson(
  lp: LpEnv,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv } = {},
): Promise<any> {
  const r = await cli(lp, args, opts);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(
      `livepatch ${args.join(' ')}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr:\n${r.stderr}`,
    );
  }
}

/** Polls `fn` every 100 ms until `ok` holds, at most `ms`; the error names `what` and the last value. */
export async function until<T>(
  what: string,
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  ms = 10_000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() - t0 > ms) throw new Error(`${what}: still ${JSON.stringify(v)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
