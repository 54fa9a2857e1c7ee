// What instrumented code costs V8 to compile and to start: the CommonJS modules of bench/apps/startup-app.mjs,
// compiled as Node's CommonJS loader does (vm.compileFunction with the module wrapper's parameters) and run up to
// their first require() (so the module header runs, with the registry of the same build installed), original
// against instrumented by one or more builds, in interleaved rounds, CPU time of this process.
//
// usage: npm run build && node bench/compile-cost.mjs [--dist DIR]... [--rounds N] [--symbols-key]
//   --dist: a build's dist directory (default: this tree's dist); give two to compare builds (an older checkout's).
//   --rounds: rounds after one discarded warm-up round (default 7).
// Prints, per variant: bytes, median CPU ms per round (compile + header for every module), ratio to the original.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import vm from 'node:vm';
import { median, shuffle, summary, fmtRatio } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: opts } = parseArgs({
  options: {
    dist: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '7' },
  },
});
const dists = (opts.dist ?? [resolve(root, 'dist')]).map((d) => resolve(d));
const rounds = Number(opts.rounds);

// The CommonJS files the app loads, from a child process that runs it without any loader.
const listing = spawnSync(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `import { createRequire } from 'node:module';
     await import(${JSON.stringify(pathToFileURL(resolve(root, 'bench/apps/startup-app.mjs')).href)});
     console.log('FILES ' + JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`,
  ],
  { encoding: 'utf8', cwd: root },
);
const files = JSON.parse(/^FILES (.*)$/m.exec(listing.stdout)?.[1] ?? 'null');
if (Array.isArray(files)) files.splice(0, files.length, ...files.filter((f) => /\.c?js$/.test(f)));
if (!Array.isArray(files)) throw new Error(`compile-cost: cannot list the app's modules: ${listing.stderr}`);

const REGISTRY = Symbol.for('livepatch.registry');
const variants = [
  { name: 'original', codes: files.map((f) => readFileSync(f, 'utf8')), registry: undefined },
];
let funcs = 0;
for (const [n, dist] of dists.entries()) {
  const inst = await import(pathToFileURL(resolve(dist, 'src/instrument/index.js')).href);
  const ids = await import(pathToFileURL(resolve(dist, 'src/loader/module-id.js')).href);
  const reg = await import(pathToFileURL(resolve(dist, 'src/runtime/registry.js')).href);
  // Each build's own registry, swapped in before its modules run: a header of one ABI must meet its own runtime.
  delete globalThis[REGISTRY];
  const registry = reg.installRegistry();
  delete globalThis[REGISTRY];
  let count = 0;
  const codes = variants[0].codes.map((source, k) => {
    const file = files[k];
    const bytes = readFileSync(file);
    const out = inst.instrument(source, {
      id: ids.moduleIdentity(file).id,
      hash: ids.contentHash(bytes),
      file,
      format: 'commonjs',
      // What the loader passes where the registry keeps symbol tables beside the code (builds that know it).
      symbolsKey: 'k'.repeat(64),
    });
    count += out.symbols.funcs.length;
    return out.code;
  });
  if (n === 0) funcs = count;
  variants.push({ name: `[${n}] instrumented`, codes, registry, dist });
}

const STOP = new Error('stop at the first require');
const stop = () => {
  throw STOP;
};
const params = ['exports', 'require', 'module', '__filename', '__dirname'];

/** Compiles every module and runs it up to its first require(); returns CPU ms. */
function pass(v, tag) {
  if (v.registry === undefined) delete globalThis[REGISTRY];
  else Object.defineProperty(globalThis, REGISTRY, { value: v.registry, configurable: true });
  const c0 = process.cpuUsage();
  for (let k = 0; k < v.codes.length; k++) {
    // A source V8 has not seen in this isolate: no hit in its in-memory compilation cache.
    const fn = vm.compileFunction(`${v.codes[k]}\n//${tag}`, params, { filename: files[k] });
    const module = { exports: {} };
    try {
      fn.call(module.exports, module.exports, stop, module, files[k], '');
    } catch {
      // STOP, or whatever a module half-run with a fake require throws: the same for every variant.
    }
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

const samples = Object.fromEntries(variants.map((v) => [v.name, []]));
for (let r = 0; r <= rounds; r++) {
  for (const v of shuffle([...variants])) {
    const ms = pass(v, `round ${r} ${v.name}`);
    if (r > 0) samples[v.name].push(ms);
  }
}
delete globalThis[REGISTRY];

const bytes = (codes) => codes.reduce((s, c) => s + Buffer.byteLength(c), 0);
console.log(
  `Node ${process.version}: ${files.length} CommonJS modules, ${funcs} functions, ${rounds} rounds (CPU ms per round, ratio to original in the same round)`,
);
dists.forEach((d, n) => console.log(`[${n}] ${d}`));
for (const v of variants) {
  const ratios = summary(samples[v.name].map((x, i) => x / samples.original[i]));
  console.log(
    `${v.name.padEnd(18)} ${(bytes(v.codes) / 1024).toFixed(0).padStart(6)} KB ${median(samples[v.name]).toFixed(1).padStart(8)} ms  ${fmtRatio(ratios)}`,
  );
}
