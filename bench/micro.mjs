// Micro-benchmark of the unpatched prologue: one workload, original vs. output of OUR instrumenter, interleaved rounds.
//
// usage: node bench/micro.mjs --workload tiny|tiny-cjs|medium|poly|async [--quick] [--out result.json]
//
// Each variant is a real module file (ESM, or CommonJS for tiny-cjs) written to a temp dir and loaded the normal
// way, so it has its own closures, feedback and loop. The instrumented file is exactly what `instrument()` returns.
// Every round runs both variants once in a fresh random order; the ratio is taken within the round, and the table
// reports the median and min–max over rounds (only same-round ratios mean anything on a shared VM).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pairedRatios, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: opts } = parseArgs({
  options: {
    workload: { type: 'string', default: 'tiny' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});

// The workloads, as module sources exporting run(n). Sizes follow prologue-bench: tiny is an inlined a+b
// (~0.3 ns, the worst case: one cycle shows), medium ~250 ns of string work, poly a 4-way polymorphic
// method call site, async an awaited async function.
const workloads = {
  tiny: {
    format: 'module',
    source: `function add(a, b) {
  return a + b;
}
export function run(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + add(i, 1)) | 0;
  return s;
}
`,
  },
  'tiny-cjs': {
    format: 'commonjs',
    source: `'use strict';
function add(a, b) {
  return a + b;
}
function run(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s = (s + add(i, 1)) | 0;
  return s;
}
module.exports = { run };
`,
  },
  medium: {
    format: 'module',
    source: `const users = [];
for (let i = 0; i < 64; i++) users.push({ id: i, name: 'user' + i, tags: ['a' + (i % 5), 'b' + (i % 3), 'c'] });
function renderUser(u) {
  let s = '<li class="user" data-id="' + u.id + '">' + u.name;
  for (let i = 0; i < u.tags.length; i++) s += '<b>' + u.tags[i] + '</b>';
  s += '</li>';
  return s + JSON.stringify({ id: u.id, name: u.name, n: u.tags.length });
}
export function run(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += renderUser(users[i & 63]).length;
  return s;
}
`,
  },
  poly: {
    format: 'module',
    source: `class Circle { constructor(r) { this.r = r; } area() { return 3.14159 * this.r * this.r; } }
class Square { constructor(s) { this.s = s; } area() { return this.s * this.s; } }
class Rect { constructor(w, h) { this.w = w; this.h = h; } area() { return this.w * this.h; } }
class Tri { constructor(b, h) { this.b = b; this.h = h; } area() { return 0.5 * this.b * this.h; } }
const shapes = [];
for (let i = 0; i < 1024; i++) {
  const k = (i * 7) % 4, x = (i % 13) + 1;
  shapes.push(k === 0 ? new Circle(x) : k === 1 ? new Square(x) : k === 2 ? new Rect(x, 2) : new Tri(x, 3));
}
export function run(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += shapes[i & 1023].area();
  return s;
}
`,
  },
  async: {
    format: 'module',
    source: `async function loadUser(id) {
  await null;
  return { id, name: 'u' };
}
export async function run(n) {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const u = await loadUser(i);
    s += u.id & 1;
  }
  return s;
}
`,
  },
};

const workload = workloads[opts.workload];
if (workload === undefined) {
  console.error(`micro: unknown workload '${opts.workload}' (one of ${Object.keys(workloads).join(', ')})`);
  process.exit(2);
}
const rounds = opts.quick ? 7 : 15;
const targetMs = opts.quick ? 15 : 30;

const { instrument } = await import(pathToFileURL(join(root, 'dist/src/instrument/index.js')).href);
// With the runtime present, its registry is installed first, so each instrumented module registers exactly as
// it would under the loader (the header's registerModule call is part of what runs in production).
let registry = 'none';
try {
  const runtime = await import(pathToFileURL(join(root, 'dist/src/runtime/index.js')).href);
  runtime.getRuntime();
  if (globalThis[Symbol.for('livepatch.registry')] !== undefined) registry = 'runtime';
} catch {}

const dir = mkdtempSync(join(tmpdir(), 'lp-bench-micro-'));
const ext = workload.format === 'module' ? 'mjs' : 'cjs';
const require = createRequire(import.meta.url);
async function load(name, code) {
  const file = join(dir, `${opts.workload}.${name}.${ext}`);
  writeFileSync(file, code);
  return workload.format === 'module' ? await import(pathToFileURL(file).href) : require(file);
}

const file = join(dir, `${opts.workload}.lp.${ext}`);
const hash = createHash('sha256').update(workload.source).digest('hex');
const out = instrument(workload.source, {
  id: `bench-micro/${opts.workload}.${ext}`,
  hash,
  file,
  format: workload.format,
});
if (!out.code.includes('__lp$m') || out.symbols.funcs.length === 0) {
  throw new Error(`micro: the instrumenter did not instrument '${opts.workload}' (no slots, no symbols)`);
}
// Loaded in a random order: on Node 24, V8 sometimes leaves the loop of a process's second module in a slower tier
// for good (BENCHMARKS.md, "Node 24 and Maglev"), so a fixed order would put that on one variant.
const loadOrder = shuffle(['base', 'instrumented']);
const byName = {};
for (const name of loadOrder) {
  byName[name] = await load(name === 'base' ? 'base' : 'lp', name === 'base' ? workload.source : out.code);
}
const variants = [
  { name: 'base', m: byName.base },
  { name: 'instrumented', m: byName.instrumented },
];

let sink = 0;
// ns per call, by the process's CPU time (what the ratios use: on a shared machine the wall clock also counts
// the time other processes held the CPU) and by the wall clock (reported beside it).
async function time(m, n) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let r = m.run(n);
  if (typeof r?.then === 'function') r = await r;
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  sink ^= r | 0;
  return { cpu: ((c1.user + c1.system) * 1000) / n, wall: Number(t1 - t0) / n };
}

// Same answers first: a benchmark of code that computes something else is worthless.
const check = await Promise.all(variants.map((v) => v.m.run(1000)));
if (check[0] !== check[1]) throw new Error(`micro: results differ: ${check.join(' vs ')}`);

// Calibrate n on the baseline so that one sample takes ~targetMs, running both variants alike from the first call:
// on Node 24, a loop that gets hot only after another one has been optimized often stays in Maglev code, ~13x
// slower, for the process's life — an uninstrumented copy of the original does it too when it comes second (8 of
// 10 processes), so a head start for one variant would measure V8's tiering, not the prologue.
let n = 1000;
for (let i = 0; i < 3; i++) for (const v of shuffle([...variants])) await time(v.m, n);
for (;;) {
  let ns = 0;
  for (const v of shuffle([...variants])) {
    const t = (await time(v.m, n)).wall;
    if (v.name === 'base') ns = t;
  }
  if ((ns * n) / 1e6 >= targetMs || n > 2e9) break;
  n = Math.min(n * 2, Math.ceil(((targetMs * 1e6) / (ns * n)) * n * 1.1));
}
for (let w = 0; w < 3; w++) for (const v of shuffle([...variants])) await time(v.m, n);

const samples = Object.fromEntries(variants.map((v) => [v.name, []]));
const wallSamples = Object.fromEntries(variants.map((v) => [v.name, []]));
for (let r = 0; r < rounds; r++)
  for (const v of shuffle([...variants])) {
    const t = await time(v.m, n);
    samples[v.name].push(t.cpu);
    wallSamples[v.name].push(t.wall);
  }

const ratios = pairedRatios(samples, 'base');
const wallRatios = pairedRatios(wallSamples, 'base');
const result = {
  suite: 'micro',
  workload: opts.workload,
  node: process.version,
  registry,
  symbols: out.symbols.funcs.map((f) => f.name),
  loadOrder,
  n,
  rounds,
  ns: { base: summary(samples.base), instrumented: summary(samples.instrumented) },
  ratio: ratios.instrumented,
  roundRatios: samples.instrumented.map((x, i) => x / samples.base[i]),
  wallNs: { base: summary(wallSamples.base), instrumented: summary(wallSamples.instrumented) },
  wallRatio: wallRatios.instrumented,
};
rmSync(dir, { recursive: true, force: true });
console.log(
  `micro ${opts.workload.padEnd(8)} node ${process.version}: base ${result.ns.base.median.toFixed(2)} ns/call, ` +
    `instrumented/base ${ratios.instrumented.median.toFixed(3)} (${ratios.instrumented.min.toFixed(3)}–` +
    `${ratios.instrumented.max.toFixed(3)}) by CPU time, ${wallRatios.instrumented.median.toFixed(3)} by wall ` +
    `clock, over ${rounds} rounds (${loadOrder[0]} loaded first)`,
);
if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 1));
if (sink === 0x7fffffff) console.log('');
