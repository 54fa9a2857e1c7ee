// Start-up of bench/apps/startup-app.mjs (~510 modules) under one or more loader builds, with and without Node's
// compile cache, in interleaved rounds: the process's own CPU time (all threads), ratios to no loader in the same
// round. Made to compare builds of the slot ABI and to decide about the compile cache (docs/loader.md).
//
// usage: npm run build && node bench/startup-compile.mjs [--register PATH]... [--rounds N] [--cold] [--ncc] [--app PATH]
//   --register: a build's dist/src/loader/register.js (default: this tree's); several compare builds.
//   --app: the app to start (default bench/apps/startup-app.mjs); bench/apps/tiny-app.mjs measures the loader's fixed
//   cost, which the `+ms` column (median of the differences to 'none' in the same round) then shows.
//   --cold: also `all cold` (a fresh empty cache every run; slow). --ncc: also every variant with NODE_COMPILE_CACHE
//   set (its own warm directory per variant), and the builds' warm variants with LIVEPATCH_COMPILE_CACHE=off.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fmtRatio, median, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: opts } = parseArgs({
  options: {
    register: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '7' },
    cold: { type: 'boolean', default: false },
    ncc: { type: 'boolean', default: false },
    app: { type: 'string' },
  },
});
const registers = (opts.register ?? [join(root, 'dist/src/loader/register.js')]).map((r) => resolve(r));
const app = opts.app ? resolve(opts.app) : join(root, 'bench/apps/startup-app.mjs');
const work = mkdtempSync(join(tmpdir(), 'lp-startup-compile-'));

const clean = {};
for (const [k, v] of Object.entries(process.env)) {
  if (k === 'NODE_OPTIONS' || k === 'NODE_COMPILE_CACHE' || k.startsWith('LIVEPATCH_')) continue;
  clean[k] = v;
}

function run(args, env) {
  const r = spawnSync(process.execPath, [...args, app], {
    env: { ...clean, XDG_RUNTIME_DIR: join(work, 'run'), LIVEPATCH_INSTALL_DIR: 'off', ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`startup-compile: ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).cpuMs;
}

let cold = 0;
const variants = [['none', () => run([], {})]];
if (opts.ncc) variants.push(['none +ncc', () => run([], { NODE_COMPILE_CACHE: join(work, 'ncc-none') })]);
registers.forEach((register, n) => {
  const lp = ['--import', pathToFileURL(register).href];
  const tag = registers.length > 1 ? `[${n}] ` : '';
  const app = { LIVEPATCH_CACHE_DIR: join(work, `app-${n}`) };
  const all = { LIVEPATCH_CACHE_DIR: join(work, `all-${n}`), LIVEPATCH_INSTRUMENT: '*' };
  variants.push([`${tag}app-only warm`, () => run(lp, app)], [`${tag}all warm`, () => run(lp, all)]);
  if (opts.ncc) {
    const off = { LIVEPATCH_COMPILE_CACHE: 'off' };
    variants.push(
      [
        `${tag}app-only warm, cc off`,
        () => run(lp, { ...app, ...off, LIVEPATCH_CACHE_DIR: join(work, `appo-${n}`) }),
      ],
      [
        `${tag}all warm, cc off`,
        () => run(lp, { ...all, ...off, LIVEPATCH_CACHE_DIR: join(work, `allo-${n}`) }),
      ],
      [`${tag}all warm +ncc`, () => run(lp, { ...all, ...off, NODE_COMPILE_CACHE: join(work, `ncc-${n}`) })],
    );
  }
  if (opts.cold) {
    variants.push([
      `${tag}all cold`,
      () => {
        const dir = join(work, `cold-${cold++}`);
        try {
          return run(lp, { ...all, LIVEPATCH_CACHE_DIR: dir });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    ]);
  }
});

try {
  for (const [, v] of variants) v(); // fills the warm caches; not counted
  const samples = Object.fromEntries(variants.map(([name]) => [name, []]));
  for (let r = 0; r < Number(opts.rounds); r++) {
    for (const [name, v] of shuffle([...variants])) samples[name].push(v());
  }
  console.log(
    `Node ${process.version}, ${app.replace(root, '')}, ${opts.rounds} rounds: CPU ms median, ratio to 'none' in the same round`,
  );
  registers.forEach((r, n) => registers.length > 1 && console.log(`[${n}] ${r}`));
  for (const [name] of variants) {
    const ratio = summary(samples[name].map((x, i) => x / samples.none[i]));
    const added = median(samples[name].map((x, i) => x - samples.none[i]));
    console.log(
      `${name.padEnd(28)} ${median(samples[name]).toFixed(0).padStart(6)} ms  ${fmtRatio(ratio)}  ${added >= 0 ? '+' : ''}${added.toFixed(1)} ms`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
