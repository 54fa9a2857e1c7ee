// Per-request cost in instructions: a bench app under callgrind, without livepatch vs. instrumented (and patched).
//
// usage: node bench/idle-cost.mjs [--app http|express] [--node PATH] [--requests N] [--warmup N]
//                                [--connections N] [--variant NAME]... [--preload FILE]... [--concurrent]
//                                [--node-arg ARG]... [--quick] [--out FILE] [--keep] [--threads]
//
// CPU time per request on this shared VM moves ±5–15% between two identical servers, which hides a 2 µs cost on a
// 22 µs request. Instruction counts do not — once V8's own background threads are out of the picture: each server
// runs under `valgrind --tool=callgrind` with instrumentation off while it warms up (so V8 tiers up first), then
// `callgrind_control` switches counting on for exactly N sequential keep-alive requests and dumps. Every thread of
// the server is counted (main, V8 helpers, GC, and on Node 20 the module.register hooks thread).
//
// By default the servers run with V8's --single-threaded (no concurrent compiler or GC threads): with them, the
// same uninstrumented server measured 71.7k, 74.4k and 92.7k main-thread instructions per request in three runs
// (Node 22), as background work lands on the main thread at different moments; without them, 69.4k and 69.3k.
// The steady state measured is the same code either way (optimized during the warm-up). --concurrent leaves
// V8's threads on.
import { spawn, spawnSync } from 'node:child_process';
import { request, Agent } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const register = pathToFileURL(join(root, 'dist/src/loader/register.js')).href;
const { values: opts } = parseArgs({
  options: {
    app: { type: 'string', default: 'http' },
    node: { type: 'string', default: process.execPath },
    requests: { type: 'string' },
    warmup: { type: 'string' },
    variant: { type: 'string', multiple: true },
    preload: { type: 'string', multiple: true },
    connections: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    threads: { type: 'boolean', default: false },
    concurrent: { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const apps = { http: 'bench/apps/http-server.mjs', express: 'bench/apps/express-app.mjs' };
if (!(opts.app in apps)) {
  console.error(`idle-cost: --app is one of ${Object.keys(apps).join(', ')}`);
  process.exit(2);
}
const N = Number(opts.requests ?? (opts.quick ? 1000 : 3000));
// Express needs ~10k requests before its per-request count settles (after 3k it was still ~1.6x the steady state
// and moved ±6% from one process to the next): V8 is still tiering its functions up.
const warmup = Number(opts.warmup ?? (opts.quick ? 5000 : 10000));
const connections = Number(opts.connections);
const nodeArgs = [
  ...(opts.concurrent ? [] : ['--single-threaded']),
  '--expose-gc',
  ...(opts['node-arg'] ?? []),
];

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('idle-cost: valgrind is not installed (apt-get install valgrind)');
  process.exit(2);
}

const loader = ['--import', register];
const all = [
  { name: 'base', args: [], env: {} },
  // The loader, the runtime and the control server, nothing instrumented.
  { name: 'loader, none instrumented', args: loader, env: { LIVEPATCH_INSTRUMENT: '-*' } },
  { name: 'instrumented', args: loader, env: {} },
  // Express and every dependency too (the app's own files are instrumented in every loader variant but the one above).
  ...(opts.app === 'express'
    ? [{ name: 'instrumented+deps', args: loader, env: { LIVEPATCH_INSTRUMENT: '*' } }]
    : []),
  // The hot renderItem replaced through the runtime (bench/apps/bench-patch.mjs): the patched path's cost.
  { name: 'patched', args: loader, env: { LP_BENCH_PATCH: '1' } },
];
const variants = opts.variant ? all.filter((v) => opts.variant.includes(v.name)) : all;
// --preload FILE: an extra variant importing FILE first (bisecting which part of the loader costs).
for (const f of opts.preload ?? [])
  variants.push({
    name: `preload ${f}`,
    args: ['--import', pathToFileURL(f).href],
    env: { LIVEPATCH_INSTRUMENT: '-*' },
  });

const work = mkdtempSync(join(tmpdir(), 'lp-idle-cost-'));

function get(agent, port, path) {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent, headers: { 'x-token': 'bench-token-0123456789' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * n requests over `connections` keep-alive connections, each connection sending its next request on an answer;
 * returns the body of the last one.
 */
async function drive(agent, port, n) {
  let left = n;
  let body = '';
  const lane = async () => {
    while (left-- > 0) body = await get(agent, port, '/items/42');
  };
  await Promise.all(Array.from({ length: connections }, lane));
  return body;
}

let firstBody;

function control(pid, ...args) {
  const r = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${r.stderr || r.stdout}`);
}

async function run(v) {
  const out = join(work, v.name.replace(/\W+/g, '-'));
  const env = { ...process.env, LIVEPATCH_CACHE_DIR: join(work, 'cache'), ...v.env };
  delete env.NODE_OPTIONS;
  const proc = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      '--separate-threads=yes',
      `--callgrind-out-file=${out}.%p`,
      opts.node,
      ...nodeArgs,
      ...v.args,
      join(root, apps[opts.app]),
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const port = await new Promise((resolve, reject) => {
    let o = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => {
      o += d;
      const m = o.match(/listening (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`idle-cost: '${v.name}' exited (${code}):\n${err}`)));
  });
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  try {
    // Every variant must answer the same, and the patched one must have run its replacement (and only it).
    const body = await drive(agent, port, warmup);
    firstBody ??= body;
    if (body !== firstBody) throw new Error(`idle-cost: '${v.name}' answered ${body}, not ${firstBody}`);
    const { patchedCalls } = JSON.parse(await get(agent, port, '/__cpu'));
    if (patchedCalls > 0 !== (v.env.LP_BENCH_PATCH === '1'))
      throw new Error(`idle-cost: '${v.name}': the patched renderItem ran ${patchedCalls} times`);
    // The same starting point for every server: a full GC, then requests enough for V8 to compile again what the
    // collection flushed (on Node 24 a window right after it spent half its instructions recompiling).
    await get(agent, port, '/__gc');
    await drive(agent, port, Math.ceil(warmup / 5));
    control(proc.pid, '--instr=on');
    control(proc.pid, '--zero');
    await drive(agent, port, N);
    control(proc.pid, '--dump');
  } finally {
    agent.destroy();
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
  }
  let total = 0;
  let main = 0;
  const threads = [];
  for (const f of readdirSync(work).filter((f) => f.startsWith(`${out.slice(work.length + 1)}.`))) {
    const text = readFileSync(join(work, f), 'utf8');
    // Only dumps made by --dump (after --zero) hold the measured window; the final one at exit is not written
    // (SIGKILL), so every summary line here is the window. One file per thread (--separate-threads).
    let n = 0;
    for (const m of text.matchAll(/^summary: (\d+)/gm)) n += Number(m[1]);
    total += n;
    if (f.endsWith('-01')) main = n;
    threads.push(`${f.slice(f.lastIndexOf('-') + 1)}:${Math.round(n / N)}`);
  }
  if (opts.threads) console.log(`idle-cost: '${v.name}' per thread and request: ${threads.sort().join(' ')}`);
  const mainFile = readdirSync(work).find(
    (f) => f.startsWith(`${out.slice(work.length + 1)}.`) && f.endsWith('-01'),
  );
  return { total, main, ...(mainFile ? vmWork(join(work, mainFile)) : { jit: 0, gc: 0 }) };
}

/**
 * What V8 itself spent of a main-thread dump: compiling (every runtime entry that compiles, optimizes or
 * deoptimizes, inclusive) and collecting garbage (Heap::CollectGarbage, inclusive). Even after 10,000 requests
 * TurboFan still compiles some Express function now and then, and when it does in the counted window it adds
 * ~90M instructions (14% of 1,000 requests): that is when V8 tiers, not what a request costs. `steady` (total
 * less these) is the request's own work, what the prologue could add to.
 */
function vmWork(file) {
  const r = spawnSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', file], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const jit = new Map();
  let gc = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([\d,]+) .*?\?\?\?:(v8::internal::[\w:]+)\(/.exec(line);
    if (m === null) continue;
    const n = Number(m[1].replaceAll(',', ''));
    const name = m[2];
    if (/^v8::internal::Runtime_\w*(Compile|Optimize|Deoptimiz|Baseline)\w*$/.test(name))
      jit.set(name, Math.max(jit.get(name) ?? 0, n));
    else if (name === 'v8::internal::Heap::CollectGarbage') gc = Math.max(gc, n);
  }
  return { jit: [...jit.values()].reduce((a, b) => a + b, 0), gc };
}

try {
  const node = spawnSync(opts.node, ['-v'], { encoding: 'utf8' }).stdout.trim();
  const results = [];
  for (const v of variants) {
    const ir = await run(v);
    results.push({
      name: v.name,
      perRequest: ir.total / N,
      main: ir.main / N,
      jit: ir.jit / N,
      gc: ir.gc / N,
      steady: (ir.main - ir.jit - ir.gc) / N,
    });
  }
  const base = results.find((r) => r.name === 'base');
  if (opts.out) {
    const ratio = (r, k) => (base ? r[k] / base[k] : null);
    const variantsOut = results.map((r) => ({
      ...r,
      ratio: ratio(r, 'perRequest'),
      mainRatio: ratio(r, 'main'),
      steadyRatio: ratio(r, 'steady'),
    }));
    const out = {
      suite: 'instructions',
      app: opts.app,
      node,
      requests: N,
      warmup,
      nodeArgs,
      variants: variantsOut,
    };
    writeFileSync(opts.out, JSON.stringify(out, null, 1));
  }
  // The main thread's count is the steady one: V8's helper threads (GC, compilers) vary by thousands of
  // instructions per request from one run to the next of the same server.
  for (const r of results) {
    console.log(
      `idle-cost node ${node} ${r.name.padEnd(28)} ${Math.round(r.perRequest).toString().padStart(9)} instructions/request` +
        (base ? `, ratio ${(r.perRequest / base.perRequest).toFixed(3)}` : '') +
        `; main thread ${Math.round(r.main)}` +
        (base ? `, ratio ${(r.main / base.main).toFixed(3)}` : '') +
        `; steady ${Math.round(r.steady)} (V8 compiling ${Math.round(r.jit)}, GC ${Math.round(r.gc)})` +
        (base ? `, ratio ${(r.steady / base.steady).toFixed(3)}` : ''),
    );
  }
} finally {
  // --keep: leave the callgrind dumps for callgrind_annotate.
  if (opts.keep) console.log(`idle-cost: dumps kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
