// Benchmark of the runtime's consistency bookkeeping on a node:http server: off (no runtime), on (runtime
// installed: every request is tracked as a task; a patch enabled, no transition), and during a transition
// (AsyncLocalStorage tagging and the dispatcher's slow path). Interleaved rounds; prints ratios.
// Run: npm run build && node dist/bench/runtime-http.js [seconds-per-round] [rounds]
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

type Mode = 'off' | 'on' | 'transition';
const here = fileURLToPath(import.meta.url);
const require = createRequire(import.meta.url);

const APP = `
export function price(n) { return n * 3; }
export function tax(n) { return Math.round(n * 0.2); }
export function unused() { return 0; }
export async function handle(n) {
  let total = 0;
  for (let i = 0; i < 5; i++) { await null; total += price(n + i) + tax(n); }
  return total;
}`;

async function serve(mode: Mode): Promise<void> {
  const dist = new URL('../src/', import.meta.url);
  if (mode !== 'off') {
    const { getRuntime } = (await import(
      new URL('runtime/index.js', dist).href
    )) as typeof import('../src/runtime/index.js');
    getRuntime();
  }
  const { instrument } = (await import(
    new URL('instrument/index.js', dist).href
  )) as typeof import('../src/instrument/index.js');
  const { code } = instrument(APP, {
    id: 'bench/app.js',
    hash: 'd'.repeat(64),
    file: '/bench/app.js',
    format: 'module',
  });
  const app = (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as {
    handle(n: number): Promise<number>;
  };
  if (mode !== 'off') {
    const { getRuntime } = (await import(
      new URL('runtime/index.js', dist).href
    )) as typeof import('../src/runtime/index.js');
    const { task } = (await import(new URL('index.js', dist).href)) as typeof import('../src/index.js');
    const rt = getRuntime();
    // A patch of a function the handler does not call keeps the comparison about bookkeeping, not patching.
    const patch = {
      name: 'bench',
      objects: [{ module: 'bench/app.js', funcs: [{ name: 'unused', replacement: () => 1 }] }],
    };
    if (mode === 'transition') {
      // An old task that never ends holds the transition open for the whole round.
      void task(() => new Promise(() => {}), 'holder');
    }
    rt.loadPatch(patch);
  }
  let cpu = process.cpuUsage();
  const server = createServer((req, res) => {
    // CPU time per request is steadier than throughput on a shared machine: both are reported.
    if (req.url === '/__cpu/start') return void ((cpu = process.cpuUsage()), res.end());
    if (req.url === '/__cpu') {
      const d = process.cpuUsage(cpu);
      return void res.end(String(d.user + d.system));
    }
    void app.handle(req.url!.length).then((n) => res.end(String(n)));
  });
  server.listen(0, '127.0.0.1', () =>
    process.stdout.write(`${(server.address() as { port: number }).port}\n`),
  );
}

async function fetchText(url: string): Promise<string> {
  return (await fetch(url)).text();
}

async function round(mode: Mode, seconds: number): Promise<{ rps: number; cpuUs: number }> {
  const child = spawn(process.execPath, [here, '--serve', mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) =>
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
  );
  const autocannon = require('autocannon') as (
    o: object,
  ) => Promise<{ requests: { average: number; total: number }; errors: number }>;
  const base = `http://127.0.0.1:${port}`;
  await autocannon({ url: `${base}/x`, connections: 50, duration: 1 }); // warm-up
  await fetchText(`${base}/__cpu/start`);
  const r = await autocannon({ url: `${base}/price`, connections: 50, duration: seconds });
  const cpu = Number(await fetchText(`${base}/__cpu`));
  child.kill();
  await sleep(100);
  if (r.errors > 0) throw new Error(`${mode}: ${r.errors} errors`);
  return { rps: r.requests.average, cpuUs: cpu / r.requests.total };
}

/** CPU ns per iteration of fn (median of 5 runs): steadier than wall time on a busy machine. */
function cpuNs(fn: () => void, n: number): number {
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const c = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const d = process.cpuUsage(c);
    runs.push(((d.user + d.system) * 1000) / n);
  }
  return runs.sort((a, b) => a - b)[2]!;
}

/** The bookkeeping alone, per request, and the cost of one call of a function as the runtime sees it. */
async function micro(): Promise<void> {
  const { TaskTable } = await import('../src/runtime/tasks.js');
  const n = 1_000_000;
  for (const alwaysTag of [false, true]) {
    const table = new TaskTable(alwaysTag);
    const ns = cpuNs(() => table.end(table.begin('http', 'GET', '/x')), n);
    console.log(
      `micro: task begin+end (${alwaysTag ? 'always tagged' : 'untagged'}): ${ns.toFixed(0)} ns/request`,
    );
  }
  const { getRuntime } = await import('../src/runtime/index.js');
  const { task } = await import('../src/index.js');
  const { instrument } = await import('../src/instrument/index.js');
  const rt = getRuntime();
  const { code } = instrument('export function price(n) { return n * 3; }', {
    id: 'bench/micro.js',
    hash: 'e'.repeat(64),
    file: '/bench/micro.js',
    format: 'module',
  });
  const m = (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as {
    price(n: number): number;
  };
  let sink = 0;
  const call = () => (sink += m.price(sink & 7));
  const calls = 10_000_000;
  console.log(`micro: call, not patched: ${cpuNs(call, calls).toFixed(1)} ns`);
  rt.loadPatch({
    name: 'micro',
    objects: [{ module: 'bench/micro.js', funcs: [{ name: 'price', replacement: (x: number) => x * 4 }] }],
  });
  console.log(`micro: call, patched: ${cpuNs(call, calls).toFixed(1)} ns`);
  rt.disablePatch('micro');
  rt.removePatch('micro');
  let release!: () => void;
  void task(() => new Promise<void>((r) => (release = r)), 'holder');
  rt.loadPatch({
    name: 'micro2',
    objects: [{ module: 'bench/micro.js', funcs: [{ name: 'price', replacement: (x: number) => x * 4 }] }],
  });
  console.log(
    `micro: call, patched, during a transition, outside any task: ${cpuNs(call, calls / 10).toFixed(1)} ns`,
  );
  await task(async () => {
    console.log(
      `micro: call, patched, during a transition, in a task: ${cpuNs(call, calls / 10).toFixed(1)} ns`,
    );
  }, 'bench');
  release();
  if (sink === 0.5) console.log(sink);
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--serve');
  if (i >= 0) return serve(process.argv[i + 1] as Mode);
  if (process.argv.includes('--micro')) return micro();
  const seconds = Number(process.argv[2] ?? 3);
  const rounds = Number(process.argv[3] ?? 3);
  const modes: Mode[] = ['off', 'on', 'transition'];
  const results: Record<Mode, number[]> = { off: [], on: [], transition: [] };
  const cpus: Record<Mode, number[]> = { off: [], on: [], transition: [] };
  for (let r = 0; r < rounds; r++) {
    // Interleaved, and rotated each round, so that drift (thermal, other load) spreads over all modes.
    for (const mode of modes.map((_, k) => modes[(k + r) % modes.length]!)) {
      const { rps, cpuUs } = await round(mode, seconds);
      results[mode].push(rps);
      cpus[mode].push(cpuUs);
      console.log(
        `round ${r + 1} ${mode.padEnd(10)} ${rps.toFixed(0)} req/s  ${cpuUs.toFixed(1)} µs CPU/request`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const off = median(results.off);
  const offCpu = median(cpus.off);
  console.log(`\nnode ${process.version}, ${rounds} rounds of ${seconds}s, medians:`);
  for (const mode of modes)
    console.log(
      `  ${mode.padEnd(10)} ${median(results[mode]).toFixed(0).padStart(8)} req/s (x${(median(results[mode]) / off).toFixed(3)})` +
        `  ${median(cpus[mode]).toFixed(1).padStart(6)} µs CPU/request (x${(median(cpus[mode]) / offCpu).toFixed(3)})`,
    );
}

await main();
