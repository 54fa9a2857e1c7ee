// `livepatch cache warm` measured: the start-up app (bench/apps/startup-app.mjs, ~510 modules) with everything
// instrumented, started cold, started after a prefill, and started without the loader; and the prefill's own time.
//
// usage: node bench/cache-warm.mjs [--rounds N] [--node BIN]... [--dist DIR]
//
// The app is copied into a temp dir with its dependencies linked from this repo's node_modules (so that it is an
// app of its own, not livepatch's tree). Per Node version, in interleaved rounds: `base` (no loader), `cold` (the
// loader, LIVEPATCH_INSTRUMENT='*', an empty cache each time), `prefilled` (the same, on a fresh copy of what
// `cache warm` wrote: a first start after a deploy), `prefilled, later` (the same cache, reused), each one process; CPU is the app's own process.cpuUsage() (every thread), ratios are paired by
// round against `base`. Then `cache warm` itself into a fresh cache with 1 and 2 workers (wall time, interleaved).
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fmtRatio, median, pairedRatios, shuffle, summary } from './stats.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    node: { type: 'string', multiple: true },
    // Another build's dist (beside a package.json and node_modules), e.g. a copy kept while this tree changes.
    dist: { type: 'string', default: join(root, 'dist') },
  },
});
const register = join(opts.dist, 'src/loader/register.js');
const cli = join(opts.dist, 'src/cli/main.js');
const rounds = Number(opts.rounds);
const nodes = opts.node ?? [
  'node',
  join(root, 'node_modules/node22/bin/node'),
  join(root, 'node_modules/node24/bin/node'),
];

function exec(bin, args, env, cwd) {
  const full = { ...process.env, ...env };
  delete full.NODE_OPTIONS;
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(bin, args, { env: full, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    p.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`cache-warm: '${args.join(' ')}' exited ${code}:\n${err}`));
      else resolve({ ms, out, err });
    });
  });
}

function makeApp(work) {
  const app = join(work, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  for (const f of ['startup-app.mjs', 'catalog.mjs']) copyFileSync(join(root, 'bench/apps', f), join(app, f));
  const deps = ['express', 'fastify', 'js-yaml', 'semver', 'acorn'];
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'startup-app', dependencies: Object.fromEntries(deps.map((d) => [d, '*'])) }),
  );
  for (const d of deps) symlinkSync(join(root, 'node_modules', d), join(app, 'node_modules', d));
  return app;
}

const work = mkdtempSync(join(tmpdir(), 'lp-bench-cache-warm-'));
try {
  const app = makeApp(work);
  const entry = join(app, 'startup-app.mjs');
  for (const bin of nodes) {
    const version = (await exec(bin, ['--version'], {}, app)).out.trim();
    const all = { LIVEPATCH_INSTRUMENT: '*' };
    const warmDir = join(work, `warm-${version}`);
    const warmed = JSON.parse(
      (await exec(bin, [cli, 'cache', 'warm', app, '--json'], { ...all, LIVEPATCH_CACHE_DIR: warmDir }, app))
        .out,
    );
    const prefillDir = join(work, `prefill-only-${version}`);
    cpSync(warmDir, prefillDir, { recursive: true });
    // The check that makes the figures mean something: after the prefill, a start instruments nothing.
    const check = await exec(
      bin,
      ['--import', register, entry],
      { ...all, LIVEPATCH_CACHE_DIR: warmDir, NODE_DEBUG: 'livepatch' },
      app,
    );
    const fresh = check.err.split('\n').filter((l) => / instrumented in /.test(l));
    const hits = check.err.split('\n').filter((l) => /: cache hit$/.test(l)).length;
    console.log(
      `node ${version}: cache warm prepared ${warmed.files} files (${warmed.instrumented} instrumented, ` +
        `${warmed.failed.length} failed); a start after it: ${hits} cache hits, ${fresh.length} instrumented` +
        (fresh.length > 0 ? `\n  ${fresh.slice(0, 5).join('\n  ')}` : ''),
    );
    let coldIndex = 0;
    const variants = {
      base: () => exec(bin, [entry], {}, app),
      cold: async () => {
        const dir = join(work, `cold-${coldIndex++}`);
        try {
          return await exec(bin, ['--import', register, entry], { ...all, LIVEPATCH_CACHE_DIR: dir }, app);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      // The first start after a deploy: a copy of what the prefill wrote and nothing else (Node's compile cache,
      // which the loader turns on in <cache dir>/compile on 22+, is filled by a start, not by the prefill).
      prefilled: async () => {
        const dir = join(work, `first-${coldIndex++}`);
        cpSync(prefillDir, dir, { recursive: true });
        try {
          return await exec(bin, ['--import', register, entry], { ...all, LIVEPATCH_CACHE_DIR: dir }, app);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      // Later starts: the same cache, after earlier starts (on 22+, the compile cache is warm too).
      'prefilled, later': () =>
        exec(bin, ['--import', register, entry], { ...all, LIVEPATCH_CACHE_DIR: warmDir }, app),
    };
    for (const run of Object.values(variants)) await run(); // page cache, discarded
    const wall = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
    const cpu = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      for (const name of shuffle(Object.keys(variants))) {
        const x = await variants[name]();
        wall[name].push(x.ms);
        cpu[name].push(JSON.parse(x.out.trim().split('\n').pop()).cpuMs);
      }
    }
    const wr = pairedRatios(wall, 'base');
    const cr = pairedRatios(cpu, 'base');
    for (const name of Object.keys(variants)) {
      console.log(
        `  ${name.padEnd(16)} wall ${summary(wall[name]).median.toFixed(0).padStart(5)} ms, ratio ${fmtRatio(wr[name])}; ` +
          `CPU ${summary(cpu[name]).median.toFixed(0).padStart(5)} ms, ratio ${fmtRatio(cr[name])}`,
      );
    }
    const prefill = { 1: [], 2: [] };
    let k = 0;
    for (let r = 0; r < rounds; r++) {
      for (const w of shuffle(['1', '2'])) {
        const dir = join(work, `prefill-${k++}`);
        try {
          const x = await exec(
            bin,
            [cli, 'cache', 'warm', app, '--workers', w, '--json'],
            { ...all, LIVEPATCH_CACHE_DIR: dir },
            app,
          );
          prefill[w].push([x.ms, JSON.parse(x.out).cpuMs]);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
    const p1 = prefill[1];
    const p2 = prefill[2];
    const speedup = p1.map((x, i) => x[0] / p2[i][0]).sort((a, b) => a - b);
    const cpuRatio = p2.map((x, i) => x[1] / p1[i][1]).sort((a, b) => a - b);
    console.log(
      `  cache warm: 1 worker wall ${median(p1.map((x) => x[0])).toFixed(0)} ms, CPU ${median(p1.map((x) => x[1])).toFixed(0)} ms; ` +
        `2 workers wall ${median(p2.map((x) => x[0])).toFixed(0)} ms, CPU ${median(p2.map((x) => x[1])).toFixed(0)} ms; ` +
        `wall 1/2 ${median(speedup).toFixed(2)} (${speedup[0].toFixed(2)}–${speedup.at(-1).toFixed(2)}), ` +
        `CPU 2/1 ${median(cpuRatio).toFixed(2)} (${cpuRatio[0].toFixed(2)}–${cpuRatio.at(-1).toFixed(2)})`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
