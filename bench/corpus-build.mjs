// Build time of the corpus: `livepatch build` for every case of corpus/ on Node.js 20, 22, 24 and 26, in interleaved
// rounds.
//
// usage: node bench/corpus-build.mjs [--quick] [--nodes 20,22,24,26] [--out result.json]
//
// Each build is the command `npm run corpus` times (scripts/corpus.mjs), run alone: the CLI from dist/, the
// published versions from the tarball cache in .cache/corpus/npm (a first, discarded round fetches any missing
// ones, so the network is used at most once). Within a round every case is built on every version in a fresh
// random order, and a version's time is compared with Node 20's in the same round: total over the cases, and per
// case. Samples are the wall time and the CPU time (user + system, all threads) of the build process.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { nodeBinaries } from '../scripts/node-versions.mjs';
import { median, shuffle, summary } from './stats.mjs';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const corpusDir = join(root, 'corpus');
const npmCache = join(root, '.cache/corpus/npm');
const installCache = join(root, '.cache/corpus/installs');
const cli = join(root, 'dist/src/cli/main.js');

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    nodes: { type: 'string', default: '20,22,24,26' },
    out: { type: 'string' },
  },
});
const nodes = opts.nodes.split(',').map((s) => s.trim());
const bins = nodeBinaries(nodes);
const baseNode = nodes[0];
const rounds = opts.quick ? 2 : 3;

const all = readdirSync(corpusDir, { withFileTypes: true })
  .filter((e) => e.isDirectory() && existsSync(join(corpusDir, e.name, 'case.json')))
  .map((e) => ({
    name: e.name,
    dir: join(corpusDir, e.name),
    ...readJson(join(corpusDir, e.name, 'case.json')),
  }))
  .sort((a, b) => a.name.localeCompare(b.name));
// --quick: every fourth case, a spread of sizes.
const cases = opts.quick ? all.filter((_, i) => i % 4 === 0) : all;

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

const work = mkdtempSync(join(tmpdir(), 'lp-corpus-build-'));

/**
 * The builder's arguments for a case, as scripts/corpus.mjs gives them. A case built from a hand-adapted diff needs
 * the vulnerable version's files: taken from the corpus's install cache (filled by `npm run corpus`), else skipped.
 */
function buildArgs(c) {
  const common = ['--cache', npmCache, '--fixes', c.advisory, '--json', ...(c.buildArgs ?? [])];
  if (!c.diff)
    return ['--from', `${c.package}@${c.vulnerable}`, '--to', `${c.package}@${c.fixed}`, ...common];
  const installed = join(installCache, `${c.package}@${c.vulnerable}`, 'node_modules', c.package);
  if (!existsSync(installed)) return undefined;
  const source = join(work, `src-${c.name}`);
  if (!existsSync(source)) cpSync(installed, source, { recursive: true });
  const name = `${c.package}-${c.fixed.replaceAll('.', '-')}`;
  return ['--source', source, '--diff', join(c.dir, c.diff), '--name', name, ...common];
}

/** One build; its wall ms (spawn to exit), CPU ms (from /usr/bin/time: user + system of the process) and exit code. */
function build(node, c, args) {
  const out = join(work, `fix-${c.name}.mjs`);
  const timeFile = join(work, 'time.txt');
  const t0 = performance.now();
  const r = spawnSync(
    '/usr/bin/time',
    ['-o', timeFile, '-f', '%U %S', bins[node], cli, 'build', ...args, '-o', out],
    {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  const wallMs = performance.now() - t0;
  const [user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  return { wallMs, cpuMs: (user + sys) * 1000, status: r.status, stderr: r.stderr };
}

if (spawnSync('/usr/bin/time', ['-f', '', 'true']).status !== 0) {
  console.error('corpus-build: /usr/bin/time is needed for the CPU time of each build');
  process.exit(2);
}
const started = performance.now();
const runnable = [];
const skipped = [];
for (const c of cases) {
  const args = buildArgs(c);
  if (args === undefined) skipped.push({ case: c.name, reason: "not installed: run 'npm run corpus' once" });
  else runnable.push({ ...c, args });
}
// case → node → [{ wallMs, cpuMs }] per round
const samples = Object.fromEntries(
  runnable.map((c) => [c.name, Object.fromEntries(nodes.map((n) => [n, []]))]),
);
const statuses = {};
try {
  // Round -1 is a warm-up, not counted: it fetches any missing tarball (once) and fills the page cache. --quick skips
  // it when every tarball is already cached.
  const tarball = (pkg, v) => join(npmCache, `${pkg.replace(/^@/, '').replace('/', '-')}-${v}.tgz`);
  const missing = runnable.some(
    (c) => !existsSync(tarball(c.package, c.vulnerable)) || !existsSync(tarball(c.package, c.fixed)),
  );
  for (let r = opts.quick && !missing ? 0 : -1; r < rounds; r++) {
    for (const c of shuffle([...runnable])) {
      for (const n of shuffle([...nodes])) {
        const b = build(n, c, c.args);
        if (r >= 0) samples[c.name][n].push(b);
        // A refused build (exit 1) is still a build to time; it must refuse on every version alike.
        (statuses[c.name] ??= {})[n] = b.status;
        if (b.status !== 0 && b.status !== 1)
          throw new Error(
            `corpus-build: '${c.name}' on Node ${n} exited ${b.status}: ${b.stderr.slice(-400)}`,
          );
      }
    }
    if (r >= 0) process.stderr.write(`corpus-build: round ${r + 1}/${rounds} done\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const [name, byNode] of Object.entries(statuses)) {
  if (new Set(Object.values(byNode)).size > 1)
    throw new Error(`corpus-build: '${name}' exits differently by version: ${JSON.stringify(byNode)}`);
}

const metrics = ['wallMs', 'cpuMs'];
const perRound = (n, k) =>
  Array.from({ length: rounds }, (_, i) => runnable.reduce((t, c) => t + samples[c.name][n][i][k], 0));
const result = {
  suite: 'corpus-build',
  versions: Object.fromEntries(
    nodes.map((n) => [n, spawnSync(bins[n], ['--version'], { encoding: 'utf8' }).stdout.trim()]),
  ),
  base: baseNode,
  rounds,
  cases: runnable.length,
  skipped,
  total: {},
  ratio: {},
  perCase: {},
  wallMs: 0,
};
for (const k of metrics) {
  result.total[k] = Object.fromEntries(nodes.map((n) => [n, summary(perRound(n, k))]));
  const base = perRound(baseNode, k);
  result.ratio[k] = Object.fromEntries(
    nodes.map((n) => [n, summary(perRound(n, k).map((x, i) => x / base[i]))]),
  );
}
for (const c of runnable) {
  result.perCase[c.name] = {
    refused: statuses[c.name][baseNode] !== 0,
    ...Object.fromEntries(
      nodes.map((n) => [
        n,
        Object.fromEntries(metrics.map((k) => [k, median(samples[c.name][n].map((s) => s[k]))])),
      ]),
    ),
    cpuRatio: Object.fromEntries(
      nodes.map((n) => [
        n,
        median(samples[c.name][n].map((s, i) => s.cpuMs / samples[c.name][baseNode][i].cpuMs)),
      ]),
    ),
  };
}
result.wallMs = performance.now() - started;
for (const n of nodes) {
  const t = result.total;
  const q = result.ratio;
  console.log(
    `corpus-build node ${result.versions[n]}: ${runnable.length} cases, total wall ${(t.wallMs[n].median / 1000).toFixed(1)} s ` +
      `(ratio to ${baseNode}: ${q.wallMs[n].median.toFixed(2)}), CPU ${(t.cpuMs[n].median / 1000).toFixed(1)} s ` +
      `(ratio ${q.cpuMs[n].median.toFixed(2)}, ${q.cpuMs[n].min.toFixed(2)}–${q.cpuMs[n].max.toFixed(2)})`,
  );
}
for (const s of skipped) console.log(`corpus-build: skipped '${s.case}': ${s.reason}`);
if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 1));
