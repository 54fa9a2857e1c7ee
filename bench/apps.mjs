// The two soak apps (Express, Fastify) uninstrumented vs instrumented vs patched under autocannon, plus memory
// after a forced GC and enable/disable transition latency under load, on the Node.js running this script.
//
// usage: node bench/apps.mjs [--app express|fastify] [--quick] [--out result.json]
//
// The method of bench/http.mjs: every variant is its own server process, all started up front and pinned to CPU 1,
// autocannon (in this process, on CPU 0) drives them in interleaved rounds, each round in a fresh random order, and
// every figure is a ratio to `base` within the round. The request mix is the soak's (list, get, create-or-update
// with a JSON body, update), every request valid and authorized. Run `npm run build` first (the control client and
// the transition timing come from dist/bench/soak/driver.js).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { betterSqliteBinding } from './soak/sqlite-binding.mjs';
import { startPinned } from './server.mjs';
import { pairedRatios, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const driverPath = join(root, 'dist/bench/soak/driver.js');
if (!existsSync(driverPath)) {
  console.error(`apps: ${driverPath} is missing; run 'npm run build' first`);
  process.exit(2);
}
const { AUTH, connectApp, cycle, patchOf, percentile, soakEnv, soakFixtures, startLoad, waitTransition } =
  await import(driverPath);
const register = join(root, 'dist/src/loader/register.js');
const cli = join(root, 'dist/src/cli/main.js');

const { values: opts } = parseArgs({
  options: {
    app: { type: 'string', default: 'express' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
if (!['express', 'fastify'].includes(opts.app)) {
  console.error(`apps: unknown app '${opts.app}' (express or fastify)`);
  process.exit(2);
}
const kind = opts.app;
const rounds = opts.quick ? 2 : 5;
const seconds = opts.quick ? 1 : 3;
const cycles = opts.quick ? 30 : 200;
const connections = 8;

// Same pinning as bench/http.mjs: the load generator on CPU 0, every server on CPU 1.
const pin = cpus().length >= 2 && spawnSync('taskset', ['-cp', '0', String(process.pid)]).status === 0;

const sqlite = betterSqliteBinding(process.execPath);
const soak = soakEnv();
if (sqlite.binding !== undefined) soak.env.SOAK_SQLITE_BINDING = sqlite.binding;
// A private loader cache, filled before the variants start (see below): a deployed service runs with a warm cache.
// soakEnv() turns the cache off, and without one the loader keeps each module's whole instrumenter output (code,
// map and symbol table) reachable to serve its symbol table later: with every dependency instrumented that reads
// ~45 MiB more heap (Fastify, Node 20) than with a warm cache, which is not what a deployed service pays.
const cacheDir = mkdtempSync(join(tmpdir(), 'lp-bench-apps-cache-'));
soak.env.LIVEPATCH_CACHE_DIR = cacheDir;

const loader = ['--import', register];
const variants = [
  { name: 'base', args: [], env: {} },
  { name: 'base-again', args: [], env: {} },
  // The default set-up: the app's own files instrumented (the fixture names no dependency).
  { name: 'instrumented', args: loader, env: {} },
  // The framework and every other dependency instrumented too: what a user who may need to patch them runs.
  { name: 'instrumented+deps', args: loader, env: { LIVEPATCH_INSTRUMENT: '*' } },
  { name: 'patched', args: loader, env: {}, patch: patchOf(kind) },
];

async function startServer(v) {
  // --expose-gc in every variant alike: /__soak/memory then samples after full collections.
  const argv = ['--expose-gc', ...v.args, join(soakFixtures, `${kind}-app.js`)];
  const s = await startPinned({
    suite: 'apps',
    name: v.name,
    argv,
    env: { ...soak.env, ...v.env },
    pin,
    timeoutMs: 60_000,
  });
  return {
    ...v,
    proc: s.proc,
    pid: s.proc.pid,
    url: `http://127.0.0.1:${s.port}`,
    driver: s.extra,
    stderr: s.stderr,
  };
}

/** CPU time of every thread of the process, in ns (schedstat: exact, unlike the 10 ms ticks of /proc/PID/stat). */
function cpuNs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return ns;
}

/** The soak's request mix (bench/soak/driver.ts startLoad), for `duration` seconds. */
function load(server, duration) {
  let n = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: server.url,
        connections,
        duration,
        timeout: 10,
        headers: AUTH,
        requests: [
          { method: 'GET', path: '/items?limit=20' },
          { method: 'GET', path: '/items/7' },
          {
            method: 'POST',
            path: '/items',
            setupRequest: (req) => ({
              ...req,
              body: JSON.stringify({ sku: `soak-${n++ % 50}`, name: 'soak item', price: 1234, tags: ['a'] }),
            }),
          },
          { method: 'PUT', path: '/items/3', body: JSON.stringify({ price: 4321, tags: ['b', 'c'] }) },
        ],
      },
      (e, r) => {
        if (e) return reject(e);
        if (r.errors + r.timeouts + r.non2xx > 0)
          return reject(
            new Error(
              `apps: '${server.name}': ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`,
            ),
          );
        resolve({
          rps: r.requests.total / duration,
          total: r.requests.total,
          p50: r.latency.p50,
          p99: r.latency.p99,
        });
      },
    );
  });
}

async function measure(server, duration) {
  const c0 = cpuNs(server.pid);
  const r = await load(server, duration);
  const cpu = (cpuNs(server.pid) - c0) / 1000 / r.total;
  const mem = await (await globalThis.fetch(`${server.url}/__soak/memory`)).json();
  return { ...r, cpu, rss: mem.rss, heap: mem.heapUsed };
}

/** `livepatch load` over the server's control socket, as an operator would. */
function cliLoad(server) {
  const r = spawnSync(process.execPath, [cli, 'load', server.patch, '--pid', String(server.pid), '--json'], {
    env: soak.env,
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`apps: livepatch load into '${server.name}' failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout).name;
}

// Answers that must match across variants, asked before any load changes the data. The patched serializer marks
// its output `"api":2`, which must be there, and is the only difference allowed.
async function answers(server) {
  const get = async (path) => (await globalThis.fetch(`${server.url}${path}`, { headers: AUTH })).text();
  const post = await globalThis.fetch(`${server.url}/items`, {
    method: 'POST',
    headers: AUTH,
    body: JSON.stringify({ sku: 'bench-check', name: 'check', price: 5, tags: ['x'] }),
  });
  const posted = `${post.status} ${(await post.text()).replace(/"updatedAt":\d+/, '"updatedAt":0')}`;
  return [await get('/items/7'), await get('/items?limit=5'), posted];
}

const servers = [];
const started = performance.now();
// Interrupted (Ctrl-C, or the driver killed): take the servers down too; they would otherwise outlive this process.
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    for (const s of servers) s.proc.kill('SIGKILL');
    soak.cleanup();
    rmSync(cacheDir, { recursive: true, force: true });
    process.exit(130);
  });
try {
  // One throwaway start with everything instrumented fills the cache for every loader variant.
  const filler = await startServer({
    name: 'cache filler',
    args: loader,
    env: { LIVEPATCH_INSTRUMENT: '*' },
  });
  filler.proc.kill('SIGKILL');
  for (const v of variants) servers.push(await startServer(v));
  const patched = servers.find((s) => s.patch !== undefined);
  const patchName = cliLoad(patched);
  const expected = await answers(servers[0]);
  for (const s of servers) {
    const got = await answers(s);
    const norm = got.map((b) => b.replaceAll(',"api":2}', '}'));
    if (s === patched && !got[0].includes('"api":2'))
      throw new Error(`apps: the patch loaded into '${s.name}' does not run: ${got[0]}`);
    for (const [i, b] of norm.entries())
      if (b !== expected[i]) throw new Error(`apps: '${s.name}' answers ${b}, 'base' answers ${expected[i]}`);
  }
  for (const s of shuffle([...servers])) await load(s, 1); // warm-up, discarded
  const keys = ['rps', 'cpu', 'p50', 'p99', 'rss', 'heap'];
  const samples = Object.fromEntries(
    keys.map((k) => [k, Object.fromEntries(servers.map((s) => [s.name, []]))]),
  );
  for (let r = 0; r < rounds; r++) {
    for (const s of shuffle([...servers])) {
      const m = await measure(s, seconds);
      for (const k of keys) samples[k][s.name].push(m[k]);
    }
  }

  // Transition latency under load: the patched server under the soak's own load (driver.ts startLoad) while the
  // patch goes out and back in, each step timed from the request to the end of its transition.
  const client = await connectApp(patched, soak);
  const enable = [];
  const disable = [];
  let underLoad;
  try {
    await waitTransition(client, patchName);
    const running = startLoad(patched, connections);
    try {
      for (let i = 0; i < cycles; i++) {
        const c = await cycle(client, patchName);
        enable.push(c.enableMs);
        disable.push(c.disableMs);
      }
    } finally {
      underLoad = await running.stop();
    }
  } finally {
    client.close();
  }
  const failures = underLoad.non2xx + underLoad.errors + underLoad.timeouts;
  if (failures > 0) throw new Error(`apps: ${failures} requests failed during the cycles`);
  if (underLoad.patchedBodies === 0 || underLoad.originalBodies === 0)
    throw new Error('apps: the cycles did not switch the answers under load (one universe never served)');
  const after = await (await globalThis.fetch(`${patched.url}/items/7`, { headers: AUTH })).text();
  if (!after.includes('"api":2')) throw new Error(`apps: after the cycles the patch does not run: ${after}`);

  const stat = (xs) => ({
    p50: percentile(xs, 50),
    p99: percentile(xs, 99),
    max: Math.max(...xs),
    n: xs.length,
  });
  const sum = (byName) => Object.fromEntries(Object.entries(byName).map(([k, xs]) => [k, summary(xs)]));
  const result = {
    suite: 'apps',
    app: kind,
    node: process.version,
    sqlite: servers[0].driver,
    sqliteNote: sqlite.note,
    rounds,
    seconds,
    connections,
    pinned: pin,
    rps: sum(samples.rps),
    ratio: pairedRatios(samples.rps, 'base'),
    cpuPerRequest: sum(samples.cpu),
    cpuRatio: pairedRatios(samples.cpu, 'base'),
    p50: sum(samples.p50),
    p99: sum(samples.p99),
    rss: sum(samples.rss),
    rssRatio: pairedRatios(samples.rss, 'base'),
    heap: sum(samples.heap),
    heapRatio: pairedRatios(samples.heap, 'base'),
    transitions: {
      cycles,
      requests: underLoad.requests,
      rps: underLoad.rps,
      enableMs: stat(enable),
      disableMs: stat(disable),
    },
    wallMs: performance.now() - started,
  };
  const f = (s, d = 3) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
  for (const s of servers) {
    const n = s.name;
    console.log(
      `apps ${kind.padEnd(7)} node ${process.version} ${n.padEnd(18)} ${result.rps[n].median.toFixed(0).padStart(5)} req/s ` +
        `ratio ${f(result.ratio[n])}; CPU ${result.cpuPerRequest[n].median.toFixed(0)} µs/req ratio ${f(result.cpuRatio[n])}; ` +
        `p50/p99 ${result.p50[n].median}/${result.p99[n].median} ms; RSS ${(result.rss[n].median / 2 ** 20).toFixed(1)} MiB ` +
        `ratio ${f(result.rssRatio[n], 2)}; heap ${(result.heap[n].median / 2 ** 20).toFixed(1)} MiB ratio ${f(result.heapRatio[n], 2)}`,
    );
  }
  const t = result.transitions;
  console.log(
    `apps ${kind.padEnd(7)} node ${process.version} ${cycles} cycles under load: enable p50 ${t.enableMs.p50.toFixed(1)} ms ` +
      `p99 ${t.enableMs.p99.toFixed(1)} ms; disable p50 ${t.disableMs.p50.toFixed(1)} ms p99 ${t.disableMs.p99.toFixed(1)} ms` +
      ` (SQLite: ${result.sqlite}${sqlite.note ? `; ${sqlite.note}` : ''})`,
  );
  if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 1));
} finally {
  for (const s of servers) s.proc.kill('SIGKILL');
  soak.cleanup();
  rmSync(cacheDir, { recursive: true, force: true });
}
