// The 1,000-cycle soak: each fixture app under autocannon while a patch on its hot functions is disabled and
// enabled over the control socket; prints the figures and appends them to docs/soak.md. Exit 1 on any failure.
//   node bench/soak/run.mjs [--cycles 1000] [--warmup 250] [--apps express,fastify] [--node 20|22|24|PATH] [--no-docs]
//     [--node-sqlite]
// Run `npm run build` first: the driver is compiled TypeScript (bench/soak/driver.ts → dist/bench/soak/driver.js).
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { betterSqliteBinding } from './sqlite-binding.mjs';

const root = new URL('../..', import.meta.url).pathname;
const driverPath = join(root, 'dist/bench/soak/driver.js');
if (!existsSync(driverPath)) {
  console.error(`soak: ${driverPath} is missing; run 'npm run build' first`);
  process.exit(2);
}
const { runSoak } = await import(driverPath);

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '250' },
    apps: { type: 'string', default: 'express,fastify' },
    connections: { type: 'string', default: '8' },
    node: { type: 'string' },
    'no-docs': { type: 'boolean', default: false },
    // The built-in node:sqlite instead of better-sqlite3 where the installed addon does not fit this Node.
    'node-sqlite': { type: 'boolean', default: false },
  },
});
const nodes = {
  20: process.execPath,
  22: join(root, 'node_modules/node22/bin/node'),
  24: join(root, 'node_modules/node24/bin/node'),
};
const node = values.node === undefined ? process.execPath : (nodes[values.node] ?? values.node);
// better-sqlite3 on every version: an addon built for this Node's ABI when the installed one is for another
// (the apps get it through SOAK_SQLITE_BINDING, which the driver's environment passes on).
if (!values['node-sqlite']) {
  const sqlite = betterSqliteBinding(node);
  if (sqlite.binding !== undefined) process.env.SOAK_SQLITE_BINDING = sqlite.binding;
  if (sqlite.note !== undefined) process.stdout.write(`soak: node:sqlite: ${sqlite.note}\n`);
}
const cycles = Number(values.cycles);
const warmup = Number(values.warmup);

// Pass marks. Heap is sampled after a full GC; the 250 warm-up cycles fill the event log's 2,000-line ring, so
// from then on a patch application that leaves anything behind shows as a slope: 512 B a cycle is half a
// kilobyte per enable+disable, far below one leaked patch application (entries, closures, task records) and
// far above the sampling noise seen (±200 KiB over the run, slopes of ±150 B/cycle). RSS moves with allocator
// and GC decisions by several MiB between identical runs, so its mark only catches gross native leaks.
const KiB = 1024;
const MiB = 1024 * KiB;
const marks = { heapGrowth: 1 * MiB, heapPerCycle: 512, rssGrowth: 16 * MiB };

const ms = (x) => `${x.toFixed(1)} ms`;
const rows = [];
let failed = false;
for (const kind of values.apps.split(',')) {
  process.stdout.write(`soak: ${kind}: ${warmup} warm-up + ${cycles} disable/enable cycles under load...\n`);
  const r = await runSoak({
    kind,
    cycles,
    warmup,
    connections: Number(values.connections),
    samples: 20,
    node,
  });
  const bad = [];
  const failures = r.load.non2xx + r.load.errors + r.load.timeouts;
  if (failures > 0) bad.push(`${failures} failed requests (${JSON.stringify(r.load.statusCodes)})`);
  if (r.load.patchedBodies === 0 || r.load.originalBodies === 0) bad.push('one universe never served');
  if (r.memory.heapGrowth > marks.heapGrowth)
    bad.push(`heap grew ${(r.memory.heapGrowth / KiB).toFixed(0)} KiB`);
  if (r.memory.heapPerCycle > marks.heapPerCycle)
    bad.push(`heap slope ${r.memory.heapPerCycle.toFixed(0)} B/cycle`);
  if (r.memory.rssGrowth > marks.rssGrowth) bad.push(`rss grew ${(r.memory.rssGrowth / MiB).toFixed(1)} MiB`);
  failed ||= bad.length > 0;
  const row = {
    app: kind,
    node: r.node,
    sqlite: r.driver,
    cycles: r.cycles,
    requests: r.load.requests,
    failed: failures,
    rps: Math.round(r.load.rps),
    p99: `${r.load.latencyP99} ms`,
    enable: `${ms(r.enableMs.p50)} / ${ms(r.enableMs.p99)} / ${ms(r.enableMs.max)}`,
    disable: `${ms(r.disableMs.p50)} / ${ms(r.disableMs.p99)} / ${ms(r.disableMs.max)}`,
    heap: `${(r.memory.first.heapUsed / MiB).toFixed(2)} → ${(r.memory.last.heapUsed / MiB).toFixed(2)} MiB (${r.memory.heapPerCycle.toFixed(0)} B/cycle)`,
    rss: `${(r.memory.first.rss / MiB).toFixed(1)} → ${(r.memory.last.rss / MiB).toFixed(1)} MiB`,
    wall: `${(r.wallMs / 1000).toFixed(1)} s`,
    result: bad.length === 0 ? 'pass' : `FAIL: ${bad.join('; ')}`,
  };
  rows.push(row);
  for (const [k, v] of Object.entries(row)) process.stdout.write(`  ${k.padEnd(9)} ${v}\n`);
}

const header =
  '| app | Node | SQLite | cycles | requests | failed | req/s | HTTP p99 | enable p50 / p99 / max | disable p50 / p99 / max | heap after GC, first → last | RSS first → last | wall | result |';
const table = [
  header,
  `|${header
    .split('|')
    .slice(1, -1)
    .map(() => ' --- ')
    .join('|')}|`,
  ...rows.map(
    (r) =>
      `| ${r.app} | ${r.node} | ${r.sqlite} | ${r.cycles} | ${r.requests} | ${r.failed} | ${r.rps} | ${r.p99} | ${r.enable} | ${r.disable} | ${r.heap} | ${r.rss} | ${r.wall} | ${r.result} |`,
  ),
].join('\n');
if (!values['no-docs']) {
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  appendFileSync(
    join(root, 'docs/soak.md'),
    `\n### ${when} — ${warmup} warm-up + ${cycles} cycles, ${values.connections} connections\n\n${table}\n`,
  );
  process.stdout.write('soak: figures appended to docs/soak.md\n');
}
process.exit(failed ? 1 : 0);
