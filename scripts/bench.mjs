// `npm run bench`: runs the benchmark suites in bench/ on Node.js 20, 22, 24 and 26 and prints Markdown tables of
// the ratios.
//
// usage: node scripts/bench.mjs [micro] [http] [instructions] [startup] [runtime] [apps] [corpus-build] [--quick]
//                                [--nodes 20,22,24,26]
//        [--update-doc]
//
// Each suite runs in a child process of the Node.js version under test and writes JSON; this script only drives
// them and formats. Results go to bench/results/<time>.{json,md} (git-ignored); --update-doc also rewrites the
// results section of BENCHMARKS.md between its markers: the tables of the suites that ran, the others' kept.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { nodeBinaries } from './node-versions.mjs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fmtRatio, mdTable, summary } from '../bench/stats.mjs';

const root = new URL('..', import.meta.url).pathname;
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '20,22,24,26' },
    'update-doc': { type: 'boolean', default: false },
    // Another file to update instead of BENCHMARKS.md (to try --update-doc without touching the real one).
    doc: { type: 'string', default: 'BENCHMARKS.md' },
  },
});
// 'runtime' (issue 3: the consistency bookkeeping on vs off, and during a transition) prints its own table.
// 'apps' (issue 6: the soak's Express and Fastify apps) runs per version; 'corpus-build' runs once, itself
// interleaving the versions, because its figure is each version's build time against Node 20's in the same round.
const allSuites = ['micro', 'http', 'instructions', 'startup', 'runtime', 'apps', 'corpus-build'];
const suites = positionals.length > 0 ? positionals : allSuites;
for (const s of suites) {
  if (!allSuites.includes(s)) {
    console.error(`bench: unknown suite '${s}' (one of ${allSuites.join(', ')})`);
    process.exit(2);
  }
}
const nodes = opts.nodes.split(',').map((s) => s.trim());
let bins;
try {
  bins = nodeBinaries(nodes);
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exit(2);
}
const workloads = ['tiny', 'tiny-cjs', 'medium', 'poly', 'async'];
const apps = ['http', 'express'];
const soakApps = ['express', 'fastify'];
const quick = opts.quick ? ['--quick'] : [];
const microProcs = opts.quick ? 1 : 3;

/** A process whose ratio is off by 4x either way: one of its two loops sat in a slow V8 tier all along. */
function isTierOutlier(r) {
  return r.ratio.median > 4 || r.ratio.median < 0.25;
}

/** One workload's runs in several processes, as one result: every round's ratio counts, plus each process's median. */
function mergeMicro(runs) {
  if (runs.some((r) => r === undefined)) return undefined;
  return {
    ...runs[0],
    ratio: summary(runs.flatMap((r) => r.roundRatios)),
    processMedians: runs.map((r) => r.ratio.median),
    ns: { base: summary(runs.map((r) => r.ns.base.median)) },
  };
}
const tmp = mkdtempSync(join(tmpdir(), 'lp-bench-'));

// One retry: in a tree where others rebuild dist/ while the benchmark runs, a child can meet a half-written file.
// A second failure is reported as 'failed' in the tables and makes the exit code 1.
function runSuite(node, script, args) {
  const first = runSuiteOnce(node, script, args);
  if (first !== undefined) return first;
  console.error(`bench: retrying ${script} ${args.join(' ')} on Node.js ${node} once`);
  return runSuiteOnce(node, script, args);
}

function runSuiteOnce(node, script, args) {
  const out = join(tmp, `r${Math.random().toString(36).slice(2)}.json`);
  const r = spawnSync(bins[node], [join(root, 'bench', script), ...args, ...quick, '--out', out], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  if (r.status !== 0 || !existsSync(out)) {
    console.error(
      `bench: ${script} ${args.join(' ')} failed on Node.js ${node} (exit ${r.status ?? r.signal})`,
    );
    return undefined;
  }
  return JSON.parse(readFileSync(out, 'utf8'));
}

const started = Date.now();
let runtimeFailed = false;
const results = { micro: {}, http: {}, instructions: {}, startup: {}, apps: {} };
for (const node of nodes) {
  console.log(`\n== Node.js ${node} (${bins[node]})`);
  if (suites.includes('micro')) {
    // Several processes per workload: JIT code placement differs from process to process (a tight loop can sit
    // at 1.00x in one and 1.3x in the next), so one process is one sample, not the answer.
    const runs = Object.fromEntries(workloads.map((w) => [w, []]));
    const reruns = Object.fromEntries(workloads.map((w) => [w, []]));
    for (let i = 0; i < microProcs; i++) {
      for (const w of workloads) {
        let r = runSuite(node, 'micro.mjs', ['--workload', w]);
        // V8 on Node 24 may keep a tiny loop in a ~13x slower tier for the process's whole life; micro.mjs runs
        // both variants alike from the first call, which avoids it (BENCHMARKS.md, "Node 24 and Maglev"). A
        // process that still lands there measures V8's tiering, not the prologue: it is run again (at most 3
        // times), and the medians it had are shown beside the table.
        for (let k = 0; k < 3 && r !== undefined && isTierOutlier(r); k++) {
          reruns[w].push(r.ratio.median);
          r = runSuite(node, 'micro.mjs', ['--workload', w]);
        }
        runs[w].push(r);
      }
    }
    results.micro[node] = Object.fromEntries(
      workloads.map((w) => [w, mergeMicro(runs[w]) && { ...mergeMicro(runs[w]), reruns: reruns[w] }]),
    );
  }
  if (suites.includes('http')) {
    results.http[node] = {};
    for (const a of apps) results.http[node][a] = runSuite(node, 'http.mjs', ['--app', a, '--patched']);
  }
  if (suites.includes('instructions')) {
    // The server under callgrind is the version under test (the driver runs on it too, outside valgrind).
    results.instructions[node] = {};
    for (const a of apps)
      results.instructions[node][a] = runSuite(node, 'idle-cost.mjs', ['--app', a, '--node', bins[node]]);
  }
  if (suites.includes('startup')) results.startup[node] = runSuite(node, 'startup.mjs', []);
  if (suites.includes('runtime')) {
    const args = opts.quick ? ['2', '3'] : ['3', '5'];
    const r = spawnSync(bins[node], [join(root, 'dist/bench/runtime-http.js'), ...args], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    if (r.status !== 0)
      console.error(`bench: runtime-http failed on Node.js ${node} (exit ${r.status ?? r.signal})`);
    runtimeFailed ||= r.status !== 0;
  }
  if (suites.includes('apps')) {
    results.apps[node] = {};
    for (const a of soakApps) results.apps[node][a] = runSuite(node, 'apps.mjs', ['--app', a]);
  }
}
// Driven by the first version's node; the builds run on every version asked for.
if (suites.includes('corpus-build'))
  results.corpusBuild = { all: runSuite(nodes[0], 'corpus-build.mjs', ['--nodes', nodes.join(',')]) };
rmSync(tmp, { recursive: true, force: true });

const versions = Object.fromEntries(
  nodes.map((n) => [n, spawnSync(bins[n], ['--version'], { encoding: 'utf8' }).stdout.trim()]),
);
// Each suite's tables form one block, opened by a marker and carrying its own run line, so that --update-doc can
// replace the blocks of the suites that ran and keep the others'.
const md = {};
const out = (suite, text) => (md[suite] ??= []).push(text);
const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
const runLine =
  `Run: ${date} UTC, ${cpus().length} × ${cpus()[0]?.model.trim()}, Node.js ${Object.values(versions).join(', ')}` +
  `${opts.quick ? ', --quick' : ''}; ${((Date.now() - started) / 60000).toFixed(1)} min. ` +
  'Cells: median (min–max) over interleaved rounds.';
const cell = (x, f) => (x === undefined ? 'failed' : f(x));

if (suites.includes('micro')) {
  out(
    'micro',
    '\n### Unpatched prologue (instrumented / original by CPU time, same round; ' +
      `${microProcs} process${microProcs > 1 ? 'es' : ''} per workload)\n`,
  );
  const header = ['workload', ...nodes.flatMap((n) => [`Node ${n}: ratio`, 'per process', 'ns/call'])];
  const rows = workloads.map((w) => [
    w,
    ...nodes.flatMap((n) => {
      const r = results.micro[n]?.[w];
      return [
        cell(r, (x) => `**${fmtRatio(x.ratio, 3)}**`),
        cell(
          r,
          (x) =>
            x.processMedians.map((m) => m.toFixed(2)).join(', ') +
            (x.reruns?.length ? ` (rerun: ${x.reruns.map((m) => m.toFixed(2)).join(', ')})` : ''),
        ),
        cell(r, (x) => x.ns.base.median.toFixed(2)),
      ];
    }),
  ]);
  out('micro', mdTable(header, rows));
}
if (suites.includes('http')) {
  out(
    'http',
    '\n### HTTP (req/s and server CPU per request; ratios to `base` in the same round; `base-again` is the noise floor)\n',
  );
  const header = ['app', 'variant', ...nodes.flatMap((n) => [`Node ${n}: req/s`, 'ratio', 'CPU/req ratio'])];
  const rows = [];
  for (const a of apps) {
    const names = new Set(nodes.flatMap((n) => Object.keys(results.http[n]?.[a]?.rps ?? {})));
    for (const v of names) {
      rows.push([
        a,
        v,
        ...nodes.flatMap((n) => {
          const r = results.http[n]?.[a];
          return [
            cell(r?.rps[v], (x) => x.median.toFixed(0)),
            cell(r?.ratio[v], (x) => fmtRatio(x, 3)),
            cell(r?.cpuRatio[v], (x) => `**${fmtRatio(x, 3)}** ${r.cpuPerRequest[v].median.toFixed(1)} µs`),
          ];
        }),
      ]);
    }
  }
  out('http', mdTable(header, rows));
}
if (suites.includes('instructions')) {
  const any = Object.values(results.instructions)
    .flatMap((r) => Object.values(r))
    .find(Boolean);
  out(
    'instructions',
    '\n### Instructions per request (callgrind, one server per variant, one run; ratios to `base`)\n\n' +
      (any
        ? `${any.requests} sequential keep-alive requests counted after ${any.warmup} of warm-up and a full GC, every ` +
          `thread of the server, V8 run with \`${any.nodeArgs.join(' ')}\` (bench/idle-cost.mjs). **Steady** is the ` +
          "main thread's count less what V8 spent compiling, optimizing or deoptimizing and collecting garbage " +
          'in the window (when V8 tiers is not what a request costs); **all** is every instruction of every thread.\n'
        : ''),
  );
  const header = [
    'app',
    'variant',
    ...nodes.flatMap((n) => [`Node ${n}: steady/request`, 'steady ratio', 'all ratio']),
  ];
  const rows = [];
  for (const a of apps) {
    const names = new Set(
      nodes.flatMap((n) => results.instructions[n]?.[a]?.variants.map((v) => v.name) ?? []),
    );
    for (const v of names) {
      rows.push([
        a,
        v,
        ...nodes.flatMap((n) => {
          const r = results.instructions[n]?.[a]?.variants.find((x) => x.name === v);
          return [
            cell(r, (x) => Math.round(x.steady).toLocaleString('en')),
            cell(r, (x) => `**${x.steadyRatio.toFixed(3)}**`),
            cell(r, (x) => x.ratio.toFixed(3)),
          ];
        }),
      ]);
    }
  }
  out('instructions', mdTable(header, rows));
}
if (suites.includes('startup')) {
  const any = Object.values(results.startup).find(Boolean);
  out(
    'startup',
    '\n### Start-up (one process, spawn to exit: wall time, and its own CPU time; ratios to `base` in the same round)\n\n' +
      (any
        ? `${any.loadedCjsModules} CommonJS modules loaded; with \`LIVEPATCH_INSTRUMENT='*'\`, ` +
          `${any.instrumented.modules} modules and ${any.instrumented.funcs} functions instrumented (Node ${any.node}); ` +
          `\`named\`: the app's files and ${any.instrumentedNamed ?? '?'} modules of 14 packages on Express's and ` +
          "Fastify's request paths (express, router, body-parser, qs, path-to-regexp, send, serve-static, finalhandler, " +
          'cookie, fastify, find-my-way, fast-uri, secure-json-parse, @fastify/proxy-addr), as a user names them. ' +
          "Rows `ts: …` (22.18+): a generated app of 121 `.ts` modules started as `node app.ts` (Node's own type " +
          "stripping), the app's files instrumented; their ratios are to `ts: base`.\n"
        : ''),
  );
  // Some variants exist only on some versions (Node's compile cache is 22.1+): every name, in run order.
  const runs = Object.values(results.startup).filter(Boolean);
  runs.sort((a, b) => Object.keys(b.ms).length - Object.keys(a.ms).length);
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.ms)))];
  const header = ['variant', ...nodes.flatMap((n) => [`Node ${n}: wall ms`, 'ratio', 'CPU ratio'])];
  const rows = names.map((v) => [
    v,
    ...nodes.flatMap((n) => {
      const r = results.startup[n];
      // A variant this version does not have (Node's compile cache is 22.1+) is not a failure.
      if (r !== undefined && r.ms[v] === undefined) return ['—', '—', '—'];
      return [
        cell(r?.ms[v], (x) => fmtRatio(x, 0)),
        cell(r?.ratio[v], (x) => `**${fmtRatio(x, 2)}**`),
        cell(r?.cpuRatio[v], (x) => `**${fmtRatio(x, 2)}** ${r.cpuMs[v].median.toFixed(0)} ms`),
      ];
    }),
  ]);
  out('startup', mdTable(header, rows));
}
const MiB = 2 ** 20;
if (suites.includes('apps')) {
  out(
    'apps',
    '\n### The soak apps (Express 5 and Fastify 5 with SQLite; ratios to `base` in the same round; `base-again` is the noise floor)\n',
  );
  const header = [
    'app',
    'Node',
    'variant',
    'req/s',
    'ratio',
    'server CPU/req ratio',
    'latency p50 / p99',
    'RSS after GC: ratio',
    'heap used after GC: ratio',
  ];
  const rows = [];
  const drivers = [];
  for (const a of soakApps) {
    for (const n of nodes) {
      const r = results.apps[n]?.[a];
      if (r === undefined) {
        rows.push([a, n, 'failed', '', '', '', '', '', '']);
        continue;
      }
      drivers.push(`Node ${n}: ${r.sqlite}${r.sqliteNote ? ` (${r.sqliteNote})` : ''}`);
      for (const v of Object.keys(r.rps)) {
        rows.push([
          a,
          n,
          v,
          r.rps[v].median.toFixed(0),
          fmtRatio(r.ratio[v], 3),
          `**${fmtRatio(r.cpuRatio[v], 3)}** ${r.cpuPerRequest[v].median.toFixed(0)} µs`,
          `${r.p50[v].median} / ${r.p99[v].median} ms`,
          `**${fmtRatio(r.rssRatio[v], 2)}** ${(r.rss[v].median / MiB).toFixed(1)} MiB`,
          `**${fmtRatio(r.heapRatio[v], 2)}** ${(r.heap[v].median / MiB).toFixed(1)} MiB`,
        ]);
      }
    }
  }
  out('apps', `SQLite driver: ${[...new Set(drivers)].join('; ')}.\n`);
  out('apps', mdTable(header, rows));
  out(
    'apps',
    '\n#### Transition latency under load (the `patched` server under the soak mix; disable + enable cycles over the control socket, each step from the request to the end of its transition)\n',
  );
  const trows = [];
  const ms = (x) => x.toFixed(1);
  for (const a of soakApps) {
    for (const n of nodes) {
      const t = results.apps[n]?.[a]?.transitions;
      trows.push(
        t === undefined
          ? [a, n, 'failed', '', '', '']
          : [
              a,
              n,
              t.cycles,
              t.rps.toFixed(0),
              `**${ms(t.enableMs.p50)}** / ${ms(t.enableMs.p99)} / ${ms(t.enableMs.max)} ms`,
              `**${ms(t.disableMs.p50)}** / ${ms(t.disableMs.p99)} / ${ms(t.disableMs.max)} ms`,
            ],
      );
    }
  }
  out(
    'apps',
    mdTable(
      ['app', 'Node', 'cycles', 'req/s meanwhile', 'enable p50 / p99 / max', 'disable p50 / p99 / max'],
      trows,
    ),
  );
}
if (suites.includes('corpus-build')) {
  const r = results.corpusBuild?.all;
  out(
    'corpus-build',
    `\n### Corpus build time (\`livepatch build\` per case, all versions interleaved; ratios to Node ${nodes[0]} in the same round)\n`,
  );
  if (r === undefined) out('corpus-build', 'failed');
  else {
    out(
      'corpus-build',
      `${r.cases} cases, ${r.rounds} rounds${r.skipped.length ? `; skipped: ${r.skipped.map((x) => `${x.case} (${x.reason})`).join(', ')}` : ''}.\n`,
    );
    const sec = (x) =>
      `${(x.median / 1000).toFixed(1)} s (${(x.min / 1000).toFixed(1)}–${(x.max / 1000).toFixed(1)})`;
    out(
      'corpus-build',
      mdTable(
        ['Node', 'total CPU', 'CPU ratio', 'total wall', 'wall ratio'],
        nodes.map((n) => [
          r.versions[n],
          sec(r.total.cpuMs[n]),
          `**${fmtRatio(r.ratio.cpuMs[n], 2)}**`,
          sec(r.total.wallMs[n]),
          fmtRatio(r.ratio.wallMs[n], 2),
        ]),
      ),
    );
    out(
      'corpus-build',
      '\nPer case, median CPU ms (and wall ms) of the build process; ratio to the first version:\n',
    );
    out(
      'corpus-build',
      mdTable(
        ['case', ...nodes.flatMap((n) => [`Node ${n}: CPU (wall) ms`, 'ratio'])],
        Object.entries(r.perCase).map(([name, c]) => [
          c.refused ? `${name} (refused)` : name,
          ...nodes.flatMap((n) => [
            `${c[n].cpuMs.toFixed(0)} (${c[n].wallMs.toFixed(0)})`,
            c.cpuRatio[n].toFixed(2),
          ]),
        ]),
      ),
    );
  }
}

const docSuites = allSuites.filter((s) => s !== 'runtime');
const marker = (suite) => `<!-- bench:suite:${suite} -->`;
/** A suite's block: its marker, its heading, this run's line, its tables. */
function blockOf(suite, run) {
  const [heading, ...rest] = md[suite].join('\n').trim().split('\n');
  return [marker(suite), heading, '', run, ...rest].join('\n');
}
// The instructions suite runs each variant once (callgrind counts, it does not sample): no rounds to summarize.
const runLineOf = (s) =>
  s === 'instructions' ? runLine.replace(' Cells: median (min–max) over interleaved rounds.', '') : runLine;
const blocks = Object.fromEntries(docSuites.filter((s) => md[s]).map((s) => [s, blockOf(s, runLineOf(s))]));
const text =
  docSuites
    .map((s) => blocks[s])
    .filter(Boolean)
    .join('\n\n') + '\n';
console.log('\n' + text);

/** The blocks of an earlier results section, by suite; one written before the markers is split by its headings. */
function earlierBlocks(section) {
  const found = {};
  if (section.includes('<!-- bench:suite:')) {
    for (const part of section.split(/\n(?=<!-- bench:suite:)/)) {
      const m = part.match(/^<!-- bench:suite:([\w-]+) -->/);
      if (m) found[m[1]] = part.trim();
    }
    return found;
  }
  const run = section.match(/^Run: .*$/m)?.[0] ?? '';
  const legacy = { 'Unpatched prologue': 'micro', HTTP: 'http', 'Start-up': 'startup' };
  for (const part of section.split(/\n(?=### )/)) {
    const suite = Object.entries(legacy).find(([h]) => part.startsWith(`### ${h}`))?.[1];
    if (suite === undefined) continue;
    const [heading, ...rest] = part.trim().split('\n');
    found[suite] = [marker(suite), heading, '', run, ...rest].join('\n');
  }
  return found;
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(
  join(root, `bench/results/${stamp}.json`),
  JSON.stringify({ versions, opts, results }, null, 1),
);
writeFileSync(join(root, `bench/results/${stamp}.md`), text);
console.log(`bench: results in bench/results/${stamp}.{json,md}`);
if (opts['update-doc']) {
  const doc = resolve(root, opts.doc);
  const old = readFileSync(doc, 'utf8');
  const start = '<!-- bench:results:start -->';
  const end = '<!-- bench:results:end -->';
  const a = old.indexOf(start);
  const b = old.indexOf(end);
  if (a < 0 || b < a) {
    console.error(`bench: ${opts.doc} has no ${start} … ${end} section to update`);
    process.exit(1);
  }
  const merged = { ...earlierBlocks(old.slice(a + start.length, b)), ...blocks };
  const section = docSuites
    .map((s) => merged[s])
    .filter(Boolean)
    .join('\n\n');
  writeFileSync(doc, old.slice(0, a + start.length) + '\n' + section + '\n' + old.slice(b));
  console.log(`bench: ${opts.doc} updated`);
}
const failed = Object.values(results).some((byNode) =>
  Object.values(byNode).some(
    (r) => r === undefined || (typeof r === 'object' && Object.values(r).includes(undefined)),
  ),
);
process.exit(failed || runtimeFailed ? 1 : 0);
