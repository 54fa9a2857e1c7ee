// The soak driver: a fixture app under the loader, autocannon load, and enable/disable cycles over the control socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlClient } from '../../src/control/client.js';
import { controlDir, socketPath } from '../../src/control/paths.js';

/** The repository root (this file runs from dist/bench/soak/). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
export const soakFixtures = join(repoRoot, 'test/fixtures/soak');
const registerEntry = join(repoRoot, 'dist/src/loader/register.js');

export type AppKind = 'express' | 'fastify';
export const patchOf = (kind: AppKind): string => join(soakFixtures, `patches/${kind}-hot.js`);

export interface SoakEnv {
  env: NodeJS.ProcessEnv;
  /** The control directory the app and our client agree on. */
  controlDir: string;
  cleanup: () => void;
}

/** A private XDG_RUNTIME_DIR (so no other process's socket is seen) and no loader cache; removed by cleanup(). */
export function soakEnv(): SoakEnv {
  const root = mkdtempSync(join(tmpdir(), 'lp-soak-'));
  const run = join(root, 'run');
  mkdirSync(run, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_RUNTIME_DIR: run,
    LIVEPATCH_INSTALL_DIR: join(root, 'installed'),
    LIVEPATCH_CACHE_DIR: 'off',
  };
  delete env['NODE_OPTIONS'];
  delete env['LIVEPATCH_TRUSTED_KEYS'];
  return { env, controlDir: controlDir(env), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export interface SoakApp {
  kind: AppKind;
  proc: ChildProcess;
  pid: number;
  url: string;
  /** 'better-sqlite3', or 'node:sqlite' where the installed binding was built for another Node ABI. */
  driver: string;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  /** Resolves when stdout matches `re`; rejects after `ms` or when the process exits first. */
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>;
  kill: () => void;
}

/** Starts test/fixtures/soak/<kind>-app.js under the loader (with --expose-gc for exact heap samples). */
export async function startSoakApp(kind: AppKind, soak: SoakEnv, node = process.execPath): Promise<SoakApp> {
  const proc = spawn(node, ['--expose-gc', '--import', registerEntry, join(soakFixtures, `${kind}-app.js`)], {
    env: soak.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  proc.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const fn of [...listeners]) fn();
  });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => {
      resolve(code ?? signal ?? -1);
      for (const fn of [...listeners]) fn();
    }),
  );
  const waitFor = (re: RegExp, ms = 15_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`timed out waiting for ${re}`)), ms);
      const check = () => {
        const m = out.match(re);
        if (m) finish(undefined, m);
        else if (proc.exitCode !== null || proc.signalCode !== null)
          finish(new Error(`process exited before ${re}`));
      };
      const finish = (e: Error | undefined, m?: RegExpMatchArray) => {
        clearTimeout(timer);
        listeners.delete(check);
        if (m) resolve(m);
        else reject(new Error(`${e?.message}; stdout:\n${out}\nstderr:\n${err}`));
      };
      listeners.add(check);
      check();
    });
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  try {
    const m = await waitFor(/listening (\d+) (\S+)/);
    return {
      kind,
      proc,
      pid: proc.pid as number,
      url: `http://127.0.0.1:${m[1]}`,
      driver: m[2] as string,
      stdout: () => out,
      stderr: () => err,
      exited,
      waitFor,
      kill,
    };
  } catch (e) {
    kill();
    throw e;
  }
}

export function connectApp(app: SoakApp, soak: SoakEnv, timeoutMs = 5000): Promise<ControlClient> {
  return ControlClient.connect(socketPath(soak.controlDir, app.pid), timeoutMs);
}

/** Polls `transition` until no transition of `name` runs; resolves with the ms waited, rejects after timeoutMs. */
export async function waitTransition(c: ControlClient, name: string, timeoutMs = 10_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const tr = (await c.request('transition')) as { patch: string } | null;
    if (tr === null || tr.patch !== name) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`transition of '${name}' still running after ${timeoutMs} ms`);
    // Back to the event loop between polls; the round trip itself paces the loop under load.
    await new Promise((r) => setImmediate(r));
  }
}

/** Sends a patch file over the socket (as `livepatch load` does) and waits for its transition; returns its name. */
export async function loadPatchFile(c: ControlClient, file: string): Promise<string> {
  const r = (await c.request('load', {
    source: readFileSync(file).toString('base64'),
    file: basename(file),
  })) as { name: string };
  await waitTransition(c, r.name);
  return r.name;
}

/** One disable + enable of a loaded, enabled patch; the time of each, from the request to the transition's end. */
export async function cycle(
  c: ControlClient,
  name: string,
): Promise<{ disableMs: number; enableMs: number }> {
  let t0 = performance.now();
  await c.request('disable', { name });
  await waitTransition(c, name);
  const disableMs = performance.now() - t0;
  t0 = performance.now();
  await c.request('enable', { name });
  await waitTransition(c, name);
  return { disableMs, enableMs: performance.now() - t0 };
}

export interface Memory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** The target's memory after a full GC, from its /__soak/memory route. */
export async function sampleMemory(app: SoakApp): Promise<Memory> {
  const r = await fetch(`${app.url}/__soak/memory`);
  return (await r.json()) as Memory;
}

export const AUTH = { authorization: 'Bearer soak-writer', 'content-type': 'application/json' };

export interface LoadResult {
  requests: number;
  /** Every failure the app would not produce for these valid requests: non-2xx, errors, timeouts. */
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** GET /items/7 answers that carried the patched serializer's mark, and that did not. */
  patchedBodies: number;
  originalBodies: number;
  latencyP99: number;
  rps: number;
}

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodeStats?: Record<string, { count: number }>;
}
type Autocannon = (
  opts: Record<string, unknown>,
  cb: (e: Error | null, r: AutocannonResult) => void,
) => { stop: () => void };

/**
 * Starts autocannon against the app's item routes (list, get, create-or-update, update; every request valid
 * and authorized, so every answer should be 2xx) until stop() is called.
 */
export function startLoad(app: SoakApp, connections = 8): { stop: () => Promise<LoadResult> } {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  let patchedBodies = 0;
  let originalBodies = 0;
  const countBody = (_status: number, body: string) => {
    if (body.includes('"api":2')) patchedBodies += 1;
    else originalBodies += 1;
  };
  let n = 0;
  let result: Promise<AutocannonResult>;
  const instance = new Promise<{ stop: () => void }>((resolveInstance) => {
    result = new Promise((resolve, reject) => {
      const inst = autocannon(
        {
          url: app.url,
          connections,
          duration: 3600,
          timeout: 10,
          headers: AUTH,
          requests: [
            { method: 'GET', path: '/items?limit=20' },
            { method: 'GET', path: '/items/7', onResponse: countBody },
            {
              method: 'POST',
              path: '/items',
              // A bounded set of SKUs: the table stays the same size however long the run.
              setupRequest: (req: Record<string, unknown>) => ({
                ...req,
                body: JSON.stringify({
                  sku: `soak-${n++ % 50}`,
                  name: 'soak item',
                  price: 1234,
                  tags: ['a'],
                }),
              }),
            },
            { method: 'PUT', path: '/items/3', body: JSON.stringify({ price: 4321, tags: ['b', 'c'] }) },
          ],
        },
        (e, r) => (e ? reject(e) : resolve(r)),
      );
      resolveInstance(inst);
    });
  });
  return {
    async stop() {
      (await instance).stop();
      const r = await result;
      const statusCodes: Record<string, number> = {};
      for (const [k, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[k] = v.count;
      return {
        requests: r.requests.total,
        non2xx: r.non2xx,
        errors: r.errors,
        timeouts: r.timeouts,
        statusCodes,
        patchedBodies,
        originalBodies,
        latencyP99: r.latency.p99,
        rps: r.requests.average,
      };
    },
  };
}

/** The p-th percentile (0–100) by nearest rank. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** Least-squares slope of ys over xs (bytes per cycle for memory samples). */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export interface SoakOptions {
  kind: AppKind;
  cycles: number;
  /** Cycles run before the first memory sample (fills the event log's ring, warms the JIT). */
  warmup: number;
  connections?: number;
  /** Memory samples taken over the measured cycles (plus one at the start and one at the end). */
  samples?: number;
  node?: string;
}

export interface SoakReport {
  kind: AppKind;
  node: string;
  driver: string;
  cycles: number;
  load: LoadResult;
  enableMs: { p50: number; p99: number; max: number };
  disableMs: { p50: number; p99: number; max: number };
  memory: {
    first: Memory;
    last: Memory;
    heapGrowth: number;
    rssGrowth: number;
    /** Slope of heapUsed over the measured cycles, in bytes per cycle. */
    heapPerCycle: number;
  };
  wallMs: number;
}

/** Runs one app through `warmup + cycles` disable/enable cycles under load and reports what it saw. */
export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const soak = soakEnv();
  let app: SoakApp | undefined;
  let client: ControlClient | undefined;
  const t0 = performance.now();
  try {
    app = await startSoakApp(o.kind, soak, o.node);
    client = await connectApp(app, soak);
    const name = await loadPatchFile(client, patchOf(o.kind));
    const load = startLoad(app, o.connections);
    let stopped: LoadResult | undefined;
    try {
      for (let i = 0; i < o.warmup; i++) await cycle(client, name);
      const samples = Math.max(2, o.samples ?? 10);
      const every = Math.max(1, Math.floor(o.cycles / samples));
      const mem: { at: number; m: Memory }[] = [{ at: 0, m: await sampleMemory(app) }];
      const enable: number[] = [];
      const disable: number[] = [];
      for (let i = 1; i <= o.cycles; i++) {
        const r = await cycle(client, name);
        enable.push(r.enableMs);
        disable.push(r.disableMs);
        if (i % every === 0 || i === o.cycles) mem.push({ at: i, m: await sampleMemory(app) });
      }
      stopped = await load.stop();
      const first = (mem[0] as { m: Memory }).m;
      const last = (mem.at(-1) as { m: Memory }).m;
      const stat = (xs: number[]) => ({
        p50: percentile(xs, 50),
        p99: percentile(xs, 99),
        max: Math.max(...xs),
      });
      return {
        kind: o.kind,
        node: ((await client.request('meta')) as { node: string }).node,
        driver: app.driver,
        cycles: o.cycles,
        load: stopped,
        enableMs: stat(enable),
        disableMs: stat(disable),
        memory: {
          first,
          last,
          heapGrowth: last.heapUsed - first.heapUsed,
          rssGrowth: last.rss - first.rss,
          heapPerCycle: slope(
            mem.map((s) => s.at),
            mem.map((s) => s.m.heapUsed),
          ),
        },
        wallMs: performance.now() - t0,
      };
    } finally {
      if (stopped === undefined) await load.stop().catch(() => undefined);
    }
  } finally {
    client?.close();
    app?.kill();
    if (app) await app.exited;
    soak.cleanup();
  }
}
