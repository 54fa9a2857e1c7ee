// Idle per-request cost, counted in instructions: the node:http bench app under callgrind, base vs. livepatch loaded.
//
// usage: node bench/idle-cost.mjs [--node PATH] [--requests N] [--warmup N] [--connections N] [--variant NAME]...
//                                [--preload FILE]... [--keep]
//
// CPU time per request on this shared VM moves ±5–15% between two identical servers, which hides a 2 µs cost on a
// 22 µs request. Instruction counts do not: each server runs under `valgrind --tool=callgrind` with instrumentation
// off while it warms up (so V8 tiers up first), then `callgrind_control` switches counting on for exactly N
// sequential keep-alive requests and dumps. Every thread of the server is counted (main, V8 helpers, GC, and on
// Node 20 the module.register hooks thread), so background work shows as well as per-request work.
import { spawn, spawnSync } from 'node:child_process';
import { request, Agent } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const register = pathToFileURL(join(root, 'dist/src/loader/register.js')).href;
const { values: opts } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    requests: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '4000' },
    variant: { type: 'string', multiple: true },
    preload: { type: 'string', multiple: true },
    connections: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    threads: { type: 'boolean', default: false },
  },
});
const N = Number(opts.requests);
const warmup = Number(opts.warmup);
const connections = Number(opts.connections);

if (spawnSync('valgrind', ['--version']).status !== 0) {
  console.error('idle-cost: valgrind is not installed (apt-get install valgrind)');
  process.exit(2);
}

const loader = ['--import', register];
const all = [
  { name: 'base', args: [], env: {} },
  // The loader, the runtime (every request tracked as a task) and the control server, nothing instrumented.
  { name: 'loader, none instrumented', args: loader, env: { LIVEPATCH_INSTRUMENT: '-*' } },
  { name: 'instrumented', args: loader, env: {} },
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

/** n requests over `connections` keep-alive connections, each connection sending its next request on an answer. */
async function drive(agent, port, n) {
  let left = n;
  const lane = async () => {
    while (left-- > 0) await get(agent, port, '/items/42');
  };
  await Promise.all(Array.from({ length: connections }, lane));
}

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
      ...v.args,
      join(root, 'bench/apps/http-server.mjs'),
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
    await drive(agent, port, warmup);
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
  return { total, main };
}

try {
  const node = spawnSync(opts.node, ['-v'], { encoding: 'utf8' }).stdout.trim();
  const results = [];
  for (const v of variants) {
    const ir = await run(v);
    results.push({ name: v.name, perRequest: ir.total / N, main: ir.main / N });
  }
  const base = results.find((r) => r.name === 'base');
  // The main thread's count is the steady one: V8's helper threads (GC, compilers) vary by thousands of
  // instructions per request from one run to the next of the same server.
  for (const r of results) {
    console.log(
      `idle-cost node ${node} ${r.name.padEnd(28)} ${Math.round(r.perRequest).toString().padStart(9)} instructions/request` +
        (base ? `, ratio ${(r.perRequest / base.perRequest).toFixed(3)}` : '') +
        `; main thread ${Math.round(r.main)}` +
        (base ? `, ratio ${(r.main / base.main).toFixed(3)}` : ''),
    );
  }
} finally {
  // --keep: leave the callgrind dumps for callgrind_annotate.
  if (opts.keep) console.log(`idle-cost: dumps kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
