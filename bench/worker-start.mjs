// What the loader adds to a worker thread's start: bench/apps/worker-pool.mjs starts 15 workers one after the other
// and reports the median time from `new Worker` to the worker's first message; one process per variant and round,
// rounds interleaved in a fresh order each, ratios to no loader in the same round. Under the loader every worker
// loads the loader too, and joins the process's patch log (src/control/threads.ts).
//
// usage: npm run build && node bench/worker-start.mjs [--register PATH]... [--rounds N]
//   --register: a build's dist/src/loader/register.js (default: this tree's); several compare builds.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fmtRatio, median, pairedRatios, shuffle } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: opts } = parseArgs({
  options: { register: { type: 'string', multiple: true }, rounds: { type: 'string', default: '11' } },
});
const registers = (opts.register ?? [join(root, 'dist/src/loader/register.js')]).map((r) => resolve(r));
const app = join(root, 'bench/apps/worker-pool.mjs');
const work = mkdtempSync(join(tmpdir(), 'lp-worker-start-'));
mkdirSync(join(work, 'run'), { mode: 0o700 });

const clean = {};
for (const [k, v] of Object.entries(process.env)) {
  if (k === 'NODE_OPTIONS' || k.startsWith('LIVEPATCH_')) continue;
  clean[k] = v;
}

function run(args) {
  const r = spawnSync(process.execPath, [...args, app], {
    env: { ...clean, XDG_RUNTIME_DIR: join(work, 'run'), LIVEPATCH_CACHE_DIR: join(work, 'cache') },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`worker-start: ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).medianMs;
}

const variants = { none: [] };
registers.forEach(
  (r, i) => (variants[registers.length === 1 ? 'loader' : `loader ${i + 1}`] = ['--import', r]),
);
const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (const args of Object.values(variants)) run(args); // fills the loader's cache: every start below is warm
for (let round = 0; round < Number(opts.rounds); round++)
  for (const name of shuffle(Object.keys(variants))) samples[name].push(run(variants[name]));
rmSync(work, { recursive: true, force: true });

const ratios = pairedRatios(samples, 'none');
console.log(
  `Node ${process.version}, ${opts.rounds} rounds, ms from new Worker to its first message (median of 15)`,
);
registers.forEach((r, i) => console.log(`  loader ${registers.length === 1 ? '' : `${i + 1} `}= ${r}`));
for (const name of Object.keys(variants))
  console.log(
    `  ${name.padEnd(10)} ${median(samples[name]).toFixed(1).padStart(6)} ms  ${fmtRatio(ratios[name])}` +
      (name === 'none' ? '' : `  +${median(samples[name].map((x, i) => x - samples.none[i])).toFixed(1)} ms`),
  );
