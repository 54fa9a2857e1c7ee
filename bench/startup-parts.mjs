// Where a warm start with every module instrumented goes, part by part: bench/apps/startup-app.mjs (~510 modules)
// in interleaved rounds, every variant with Node's compile cache warm, so that what differs is livepatch alone.
//
//   base          no loader, NODE_COMPILE_CACHE (the fair baseline: the loader turns the same cache on)
//   base again    the same, a second time: the A/A row, the resolution of the run
//   app only      the loader, default set-up (the app's own files): its fixed cost and its per-module decisions
//   original code everything, but each cache entry holds the module's original file: finding the entries
//   all           everything instrumented (the real entries)
//   no prologue   the real entries with every prologue's test made `false`: what the entry checks cost
//
// Rows differ by one part each: app only − base is the loader being there, original code − app only is finding
// each module's entry, all − original code is the instrumented code itself, all − no prologue the checks.
//
// usage: npm run build && node bench/startup-parts.mjs [--rounds N]   (22.1+: needs the compile cache)
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { openCache, SYMBOLS } from '../dist/src/loader/cache.js';
import { fmtRatio, median, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: opts } = parseArgs({ options: { rounds: { type: 'string', default: '12' } } });
const app = join(root, 'bench/apps/startup-app.mjs');
const register = pathToFileURL(join(root, 'dist/src/loader/register.js')).href;
const work = mkdtempSync(join(tmpdir(), 'lp-startup-parts-'));

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
  if (r.status !== 0) throw new Error(`startup-parts: ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()).cpuMs;
}

const lp = ['--import', register];
const everything = (dir) => () =>
  run(lp, { LIVEPATCH_INSTRUMENT: '*', LIVEPATCH_CACHE_DIR: join(work, dir) });

/**
 * A copy of the warm cache `all` with each entry's code rewritten by `edit(code)` (the table kept), and no compile
 * cache: Node's fills again for the new code in the warm-up runs.
 */
function variantCache(name, edit) {
  const dir = join(work, name);
  cpSync(join(work, 'all'), dir, { recursive: true });
  rmSync(join(dir, 'compile'), { recursive: true, force: true });
  const cache = openCache(dir, false);
  let changed = 0;
  for (const key of readdirSync(cache.dir)) {
    const code = cache.get(key);
    if (code === undefined) continue;
    const table = cache.get(key + SYMBOLS);
    const out = edit(code);
    if (out === code) continue;
    if (table !== undefined) cache.set(key + SYMBOLS, table);
    cache.set(key, out);
    changed++;
  }
  return changed;
}

const variants = [
  ['base', () => run([], { NODE_COMPILE_CACHE: join(work, 'ncc') })],
  ['base again', () => run([], { NODE_COMPILE_CACHE: join(work, 'ncc') })],
  ['app only', () => run(lp, { LIVEPATCH_CACHE_DIR: join(work, 'app') })],
  ['original code', everything('original')],
  ['all', everything('all')],
  ['no prologue', everything('noprologue')],
];

try {
  if (typeof (await import('node:module')).enableCompileCache !== 'function') {
    throw new Error(`startup-parts: Node ${process.version} has no compile cache (22.1+)`);
  }
  everything('all')(); // fills the real cache
  // The module header names the file (abi.md §1); the entry of its original code is still served by key, so the
  // loader does all its per-module work and V8 compiles what it would without livepatch.
  const originals = variantCache('original', (code) => {
    const m = /\bfile: ("(?:[^"\\]|\\.)*")/.exec(code);
    return m === null ? code : readFileSync(JSON.parse(m[1]), 'utf8');
  });
  let prologues = 0;
  variantCache('noprologue', (code) =>
    code.replace(/if \(__lp\$m\.f\d+\) \{/g, () => {
      prologues++;
      return 'if (false) {';
    }),
  );
  // Fills the other caches, Node's compile caches included (twice: the first start writes them); not counted.
  for (const [, v] of variants) {
    v();
    v();
  }
  const samples = Object.fromEntries(variants.map(([name]) => [name, []]));
  for (let r = 0; r < Number(opts.rounds); r++) {
    for (const [name, v] of shuffle([...variants])) samples[name].push(v());
  }
  console.log(
    `Node ${process.version}, ${app.replace(root, '')}, ${opts.rounds} rounds, every variant with a warm compile ` +
      `cache (${originals} entries given their original code, ${prologues} prologues made dead): CPU ms median, ` +
      `ratio to 'base' in the same round`,
  );
  for (const [name] of variants) {
    const ratio = summary(samples[name].map((x, i) => x / samples.base[i]));
    console.log(`${name.padEnd(14)} ${median(samples[name]).toFixed(0).padStart(6)} ms  ${fmtRatio(ratio)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
