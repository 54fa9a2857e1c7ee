// Start-up benchmark: an app with a large dependency tree (~500 modules), original vs. everything instrumented with
// a cold cache, a prefilled one (first start after `livepatch cache warm`) and a warm one, in interleaved rounds.
//
// usage: node bench/startup.mjs [--quick] [--out result.json]
//
// Each sample is the wall time of one `node app` process from spawn to exit. `cold` gets a fresh, empty cache
// directory every time (every module is instrumented from scratch); `warm` reuses one that an earlier run filled.
// `app-only` is the default set-up (only the app's own files instrumented, warm) and shows the loader's fixed cost;
// `named` adds the web stack's packages a user would name (the app's package.json `"livepatch"` list).
// Where Node runs TypeScript itself (22.18+), `ts: …` rows start a generated app of 121 `.ts` modules as `node
// app.ts`, without and with livepatch, their ratios to `ts: base`: Node strips the types at every start unless its
// compile cache is on, and livepatch's cache keeps the stripped, instrumented code.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { pairedRatios, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const register = pathToFileURL(join(root, 'dist/src/loader/register.js')).href;
const probe = pathToFileURL(join(root, 'test/fixtures/realworld/probe.mjs')).href;
const app = join(root, 'bench/apps/startup-app.mjs');
const { values: opts } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, out: { type: 'string' } },
});
const rounds = opts.quick ? 4 : 8;
const work = mkdtempSync(join(tmpdir(), 'lp-bench-startup-'));
const warmAll = join(work, 'warm-all');
const warmApp = join(work, 'warm-app');
const warmNamed = join(work, 'warm-named');
// The set-up a user who expects to patch the web stack writes (docs/loader.md: a dependency is instrumented when the
// app names it): the packages on Express's and Fastify's request paths that published advisories have touched.
// Their 90-odd modules are instrumented; the other ~420 dependency modules are not.
const named =
  'express,router,body-parser,qs,path-to-regexp,send,serve-static,finalhandler,cookie,' +
  'fastify,find-my-way,fast-uri,secure-json-parse,@fastify/proxy-addr';

function runApp(args, env, entry = app) {
  const full = { ...process.env, ...env };
  delete full.NODE_OPTIONS;
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const proc = spawn(process.execPath, [...args, entry], { env: full, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    proc.on('exit', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) return reject(new Error(`startup: app exited ${code}:\n${err}`));
      resolve({ ms, cpuMs: JSON.parse(out).cpuMs, out, err });
    });
  });
}

// Node's own compile cache (22.1+): the loader turns it on in its cache directory once it instruments a module
// (docs/loader.md), so `all warm` has it; `base, compile cache` is the same help given to the app without livepatch,
// and `all warm, compile cache off` is livepatch without it. Both honest ratios come from these rows.
const hasCompileCache = typeof (await import('node:module')).default.enableCompileCache === 'function';
const baseCompileCache = join(work, 'ncc');

// The deploy step: the app in a directory of its own (its dependencies linked from this repository, so a start
// loads the very same files), and `livepatch cache warm` run on it into `prefilled`, as a Dockerfile's RUN would.
const deployed = join(work, 'deployed');
const prefilled = join(work, 'prefilled');
function deployApp() {
  const deps = ['acorn', 'express', 'fastify', 'js-yaml', 'semver'];
  mkdirSync(join(deployed, 'node_modules'), { recursive: true });
  writeFileSync(
    join(deployed, 'package.json'),
    JSON.stringify({
      name: 'startup-app',
      private: true,
      dependencies: Object.fromEntries(deps.map((d) => [d, '*'])),
    }),
  );
  for (const f of ['startup-app.mjs', 'catalog.mjs']) cpSync(join(root, 'bench/apps', f), join(deployed, f));
  for (const d of deps) symlinkSync(join(root, 'node_modules', d), join(deployed, 'node_modules', d));
  const r = spawnSync(
    process.execPath,
    [join(root, 'dist/src/cli/main.js'), 'cache', 'warm', deployed, '--json'],
    {
      env: { ...process.env, LIVEPATCH_CACHE_DIR: prefilled, LIVEPATCH_INSTRUMENT: '*' },
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`startup: cache warm failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

// A TypeScript app run by Node's own type stripping: 120 modules of 25 typed functions each, and the entry.
const stripsTypes = process.features.typescript === 'strip';
const tsApp = join(work, 'ts-app');
function makeTsApp() {
  mkdirSync(join(tsApp, 'lib'), { recursive: true });
  writeFileSync(
    join(tsApp, 'package.json'),
    JSON.stringify({ name: 'ts-app', private: true, type: 'module' }),
  );
  let entry = '';
  for (let i = 0; i < 120; i++) {
    let text = `export interface Item { id: number; name: string; tags: readonly string[]; price?: number }\n`;
    for (let j = 0; j < 25; j++)
      text +=
        `export function f${j}(item: Item, factor: number = ${j}): number {\n` +
        `  const t: number = item.tags.length as number;\n  return (item.price ?? 0) * factor + t + ${j};\n}\n` +
        `export const g${j} = <T extends { id: number }>(xs: T[]): T[] => xs.filter((x: T) => x.id > ${j});\n`;
    writeFileSync(join(tsApp, 'lib', `m${i}.ts`), text);
    entry += `import { f1 as f${i} } from './lib/m${i}.ts';\n`;
  }
  entry += `let sum: number = 0;\n`;
  for (let i = 0; i < 120; i++) entry += `sum += f${i}({ id: 1, name: 'a', tags: [] }, 2);\n`;
  entry += `const cpu = process.cpuUsage();\nconsole.log(JSON.stringify({ sum, cpuMs: (cpu.user + cpu.system) / 1000 }));\n`;
  writeFileSync(join(tsApp, 'app.ts'), entry);
  return join(tsApp, 'app.ts');
}
const tsEntry = stripsTypes ? makeTsApp() : '';

let coldIndex = 0;
const variants = {
  base: () => runApp([], {}),
  ...(hasCompileCache && {
    'base, compile cache': () => runApp([], { NODE_COMPILE_CACHE: baseCompileCache }),
  }),
  'app-only warm': () => runApp(['--import', register], { LIVEPATCH_CACHE_DIR: warmApp }),
  'named warm': () =>
    runApp(['--import', register], { LIVEPATCH_CACHE_DIR: warmNamed, LIVEPATCH_INSTRUMENT: named }),
  'all cold': async () => {
    const dir = join(work, `cold-${coldIndex++}`);
    try {
      return await runApp(['--import', register], { LIVEPATCH_CACHE_DIR: dir, LIVEPATCH_INSTRUMENT: '*' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  // The first start after a deploy step that ran `livepatch cache warm` (deployApp, once): a fresh copy of what it
  // made every time — livepatch's entries and, on 22.1+, Node's compile cache for the CommonJS modules.
  'all prefilled, first start': async () => {
    const dir = join(work, `prefilled-${coldIndex++}`);
    cpSync(prefilled, dir, { recursive: true });
    try {
      return await runApp(
        ['--import', register],
        { LIVEPATCH_CACHE_DIR: dir, LIVEPATCH_INSTRUMENT: '*' },
        join(deployed, 'startup-app.mjs'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  'all warm': () =>
    runApp(['--import', register], { LIVEPATCH_CACHE_DIR: warmAll, LIVEPATCH_INSTRUMENT: '*' }),
  ...(hasCompileCache && {
    'all warm, compile cache off': () =>
      runApp(['--import', register], {
        LIVEPATCH_CACHE_DIR: warmAll,
        LIVEPATCH_INSTRUMENT: '*',
        LIVEPATCH_COMPILE_CACHE: 'off',
      }),
  }),
  ...(stripsTypes && {
    'ts: base': () => runApp([], {}, tsEntry),
    'ts: base, compile cache': () => runApp([], { NODE_COMPILE_CACHE: join(work, 'ts-ncc') }, tsEntry),
    'ts: cold': async () => {
      const dir = join(work, `ts-cold-${coldIndex++}`);
      try {
        return await runApp(['--import', register], { LIVEPATCH_CACHE_DIR: dir }, tsEntry);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    'ts: warm': () => runApp(['--import', register], { LIVEPATCH_CACHE_DIR: join(work, 'ts-warm') }, tsEntry),
  }),
};

try {
  // One counting run first (not timed): how many modules the app loads and how many the loader instrumented.
  const probeOut = join(work, 'probe.jsonl');
  const counted = await runApp(['--import', register, '--import', probe], {
    LIVEPATCH_CACHE_DIR: warmAll,
    LIVEPATCH_INSTRUMENT: '*',
    LP_REALWORLD_PROBE: probeOut,
  });
  const loaded = JSON.parse(counted.out).cjs;
  const registered = JSON.parse(readFileSync(probeOut, 'utf8').trim().split('\n')[0]).modules;
  const instrumented = {
    modules: registered.length,
    funcs: registered.reduce((n, m) => n + Math.max(0, m.funcs), 0),
  };
  if (instrumented.modules < 100)
    throw new Error(`startup: only ${instrumented.modules} modules were instrumented`);
  const namedOut = join(work, 'probe-named.jsonl');
  await runApp(['--import', register, '--import', probe], {
    LIVEPATCH_CACHE_DIR: warmNamed,
    LIVEPATCH_INSTRUMENT: named,
    LP_REALWORLD_PROBE: namedOut,
  });
  const namedModules = JSON.parse(readFileSync(namedOut, 'utf8').trim().split('\n')[0]).modules.length;
  if (namedModules < 50 || namedModules > instrumented.modules / 2)
    throw new Error(`startup: the named packages instrumented ${namedModules} modules`);
  await variants['app-only warm']();
  await variants['named warm']();
  const warmed = deployApp();

  for (const run of shuffle(Object.values(variants))) await run(); // warm-up (disk cache, page cache), discarded
  const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  const cpuSamples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const name of shuffle(Object.keys(variants))) {
      const r = await variants[name]();
      samples[name].push(r.ms);
      cpuSamples[name].push(r.cpuMs);
    }
  }
  // The TypeScript app's rows are ratios to its own base.
  const own = (all, base) => {
    const ts = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('ts: ')));
    const rest = Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith('ts: ')));
    return { ...pairedRatios(rest, base), ...(stripsTypes ? pairedRatios(ts, `ts: ${base}`) : {}) };
  };
  const ratios = own(samples, 'base');
  const cpuRatios = own(cpuSamples, 'base');
  const result = {
    suite: 'startup',
    node: process.version,
    rounds,
    loadedCjsModules: loaded,
    instrumented,
    instrumentedNamed: namedModules,
    // What the deploy step's `cache warm` did: files instrumented, and those also compiled into Node's cache.
    prefill: { instrumented: warmed.instrumented, compiled: warmed.compiled, ms: warmed.ms },
    ms: Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, summary(xs)])),
    ratio: ratios,
    cpuMs: Object.fromEntries(Object.entries(cpuSamples).map(([k, xs]) => [k, summary(xs)])),
    cpuRatio: cpuRatios,
  };
  for (const name of Object.keys(variants)) {
    const r = ratios[name];
    console.log(
      `startup node ${process.version} ${name.padEnd(14)} ${result.ms[name].median.toFixed(0).padStart(5)} ms, ` +
        `ratio ${r.median.toFixed(2)} (${r.min.toFixed(2)}–${r.max.toFixed(2)}); CPU ` +
        `${result.cpuMs[name].median.toFixed(0)} ms, ratio ${cpuRatios[name].median.toFixed(2)} ` +
        `(${cpuRatios[name].min.toFixed(2)}–${cpuRatios[name].max.toFixed(2)})`,
    );
  }
  console.log(
    `startup: ${loaded} CommonJS modules loaded; ${instrumented.modules} modules, ${instrumented.funcs} functions instrumented`,
  );
  if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 1));
} finally {
  rmSync(work, { recursive: true, force: true });
}
