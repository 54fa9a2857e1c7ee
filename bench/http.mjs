// HTTP benchmark: a node:http server and an Express app under autocannon, original vs. instrumented (vs. patched).
//
// usage: node bench/http.mjs [--app http|express] [--quick] [--patched] [--baseline REGISTER_JS] [--out result.json]
//                           [--rounds N] [--seconds S]   (a longer A/B than the suite's 4 rounds of 2 s)
//
// Every variant is its own server process, all started up front; autocannon (programmatic API, in this process)
// drives them in interleaved rounds, each round in a fresh random order, and req/s ratios are taken within the
// round against `base`. `base-again` is a second, identical uninstrumented server: its ratio to `base` is the
// noise floor of this machine, the smallest difference the other rows can show.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { startPinned } from './server.mjs';
import { pairedRatios, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const register = pathToFileURL(join(root, 'dist/src/loader/register.js')).href;
const { values: opts } = parseArgs({
  options: {
    app: { type: 'string', default: 'http' },
    quick: { type: 'boolean', default: false },
    patched: { type: 'boolean', default: false },
    baseline: { type: 'string' },
    out: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
  },
});
const entry = { http: 'bench/apps/http-server.mjs', express: 'bench/apps/express-app.mjs' }[opts.app];
if (entry === undefined) {
  console.error(`http: unknown app '${opts.app}' (http or express)`);
  process.exit(2);
}
const rounds = Number(opts.rounds ?? (opts.quick ? 3 : 4));
const seconds = Number(opts.seconds ?? (opts.quick ? 1 : 2));
const connections = 16;
const cacheDir = mkdtempSync(join(tmpdir(), 'lp-bench-http-'));

// With two or more CPUs and taskset available, the load generator (this process) runs on CPU 0 and every server on
// CPU 1: otherwise the scheduler sometimes puts both on one core and req/s halves, whichever variant it hits.
const pin = cpus().length >= 2 && spawnSync('taskset', ['-cp', '0', String(process.pid)]).status === 0;

const loader = ['--import', register];
const variants = [
  { name: 'base', args: [], env: {} },
  { name: 'base-again', args: [], env: {} },
  // The loader and the runtime (HTTP requests tracked as tasks) with nothing instrumented: separates their
  // per-request cost from the prologues'.
  { name: 'loader, none instrumented', args: loader, env: { LIVEPATCH_INSTRUMENT: '-*' } },
  { name: 'instrumented', args: loader, env: {} },
];
// Express itself (and its dependencies) instrumented too: what a user who may need to patch express runs.
if (opts.app === 'express')
  variants.push({ name: 'instrumented+deps', args: loader, env: { LIVEPATCH_INSTRUMENT: '*' } });
if (opts.patched) variants.push({ name: 'patched', args: loader, env: { LP_BENCH_PATCH: '1' } });
// --baseline: the loader-none and instrumented variants again from another build's register.js (e.g. a copy of dist/
// made before a change), so a change is measured against the previous build in the same interleaved rounds.
if (opts.baseline) {
  const old = ['--import', pathToFileURL(opts.baseline).href];
  const cache = { LIVEPATCH_CACHE_DIR: join(cacheDir, 'baseline') }; // its own: the builds may differ in output
  variants.push(
    { name: 'baseline: loader, none', args: old, env: { ...cache, LIVEPATCH_INSTRUMENT: '-*' } },
    { name: 'baseline: instrumented', args: old, env: cache },
  );
}

async function startServer(v) {
  const env = { ...process.env, LIVEPATCH_CACHE_DIR: cacheDir, ...v.env };
  delete env.NODE_OPTIONS;
  const argv = [...v.args, join(root, entry)];
  const s = await startPinned({ suite: 'http', name: v.name, argv, env, pin, timeoutMs: 30_000 });
  return { ...v, proc: s.proc, url: `http://127.0.0.1:${s.port}`, stderr: s.stderr };
}

async function cpuMicros(server) {
  const u = JSON.parse(await (await globalThis.fetch(`${server.url}/__cpu`)).text());
  return u.user + u.system;
}

/** One load run: req/s, and the server's CPU time per request (µs), which contention on the machine moves less. */
async function measure(server, duration) {
  const cpu0 = await cpuMicros(server);
  const { rps, total } = await load(server, duration);
  const cpu1 = await cpuMicros(server);
  return { rps, cpu: (cpu1 - cpu0) / total };
}

function load(server, duration) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${server.url}/items/42`,
        connections,
        duration,
        headers: { 'x-token': 'bench-token-0123456789' },
      },
      (e, r) => {
        if (e) return reject(e);
        if (r.errors + r.timeouts + r.non2xx > 0) {
          return reject(
            new Error(
              `http: '${server.name}': ${r.errors} errors, ${r.timeouts} timeouts, ${r.non2xx} non-2xx`,
            ),
          );
        }
        resolve({ rps: r.requests.total / duration, total: r.requests.total });
      },
    );
  });
}

const servers = [];
try {
  for (const v of variants) servers.push(await startServer(v));
  // Every variant must answer the same thing, or the comparison means nothing.
  const bodies = await Promise.all(
    servers.map(async (s) =>
      (await globalThis.fetch(`${s.url}/items/42`, { headers: { 'x-token': 'x' } })).text(),
    ),
  );
  for (const [i, b] of bodies.entries()) {
    if (b !== bodies[0])
      throw new Error(`http: '${servers[i].name}' answers ${b}, 'base' answers ${bodies[0]}`);
  }
  for (const s of shuffle([...servers])) await load(s, 1); // warm-up, discarded
  const samples = Object.fromEntries(servers.map((s) => [s.name, []]));
  const cpuSamples = Object.fromEntries(servers.map((s) => [s.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const s of shuffle([...servers])) {
      const m = await measure(s, seconds);
      samples[s.name].push(m.rps);
      cpuSamples[s.name].push(m.cpu);
    }
  }
  for (const s of servers) {
    const calls = JSON.parse(await (await globalThis.fetch(`${s.url}/__cpu`)).text()).patchedCalls;
    if ((s.name === 'patched') !== calls > 0)
      throw new Error(`http: '${s.name}' ran the replacement ${calls} times`);
  }
  const ratios = pairedRatios(samples, 'base');
  const cpuRatios = pairedRatios(cpuSamples, 'base');
  const result = {
    suite: 'http',
    app: opts.app,
    node: process.version,
    rounds,
    seconds,
    connections,
    rps: Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, summary(xs)])),
    ratio: ratios,
    pinned: pin,
    cpuPerRequest: Object.fromEntries(Object.entries(cpuSamples).map(([k, xs]) => [k, summary(xs)])),
    cpuRatio: cpuRatios,
  };
  for (const s of servers) {
    const r = ratios[s.name];
    console.log(
      `http ${opts.app.padEnd(7)} node ${process.version} ${s.name.padEnd(26)} ${result.rps[s.name].median.toFixed(0).padStart(6)} req/s, ` +
        `ratio ${r.median.toFixed(3)} (${r.min.toFixed(3)}–${r.max.toFixed(3)}); ` +
        `server CPU ${result.cpuPerRequest[s.name].median.toFixed(1)} µs/req, ratio ${cpuRatios[s.name].median.toFixed(3)} ` +
        `(${cpuRatios[s.name].min.toFixed(3)}–${cpuRatios[s.name].max.toFixed(3)})`,
    );
  }
  if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 1));
} finally {
  for (const s of servers) s.proc.kill('SIGKILL');
  rmSync(cacheDir, { recursive: true, force: true });
}
