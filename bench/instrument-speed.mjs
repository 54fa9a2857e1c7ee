// The instrumenter's cold cost: every module the start-up app loads, instrumented once in a fresh process (no JIT
// warm-up for acorn or our code, as in a service's first start), CPU time split by phase, with a hash of all outputs.
//
// usage: node bench/instrument-speed.mjs [--rounds N] [--baseline DIR] [--current DIR] [--node BIN]... [--prof DIR]
//
// The module list is what bench/apps/startup-app.mjs loads (recorded once with a Node 24 load hook). Each sample is
// one child process that imports the instrumenter from DIST (default: this tree's dist) and instruments every module;
// with --baseline DIR (another build's `dist`), the two run in interleaved rounds and the script prints per-round CPU
// ratios and checks that both produce byte-identical output (sha256 over every module's code, map and symbol table).
// --prof DIR writes a --cpu-prof of one child per Node version there.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median, shuffle } from './stats.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const self = fileURLToPath(import.meta.url);

const { values: opts } = parseArgs({
  options: {
    child: { type: 'string' },
    list: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    baseline: { type: 'string' },
    current: { type: 'string' },
    node: { type: 'string', multiple: true },
    prof: { type: 'string' },
    phases: { type: 'boolean', default: false },
  },
});

/** CPU milliseconds between two process.cpuUsage() readings. */
const ms = (a, b) => (b.user + b.system - a.user - a.system) / 1000;

if (opts.child !== undefined && opts.phases) await phasesChild(opts.child, opts.list);
else if (opts.child !== undefined) await child(opts.child, opts.list);
else await parent();

/** One fresh process: instrument every listed module once, timing each phase; print one JSON line. */
async function child(dist, listFile) {
  const list = JSON.parse(readFileSync(listFile, 'utf8'));
  const sources = list.map(([file, format]) => ({ file, format, source: readFileSync(file, 'utf8') }));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const at = (m) => import(pathToFileURL(join(dist, 'src/instrument', m)).href);
  const idx = await at('index.js');
  const importMs = performance.now() - t0;
  const phases = { parse: 0, analyze: 0, finish: 0, emit: 0, map: 0 };
  const perModule = [];
  const outputs = [];
  let failed = 0;
  const cpu1 = process.cpuUsage();
  for (const { file, format, source } of sources) {
    const m0 = performance.now();
    let out;
    try {
      // The loader's call (transform.ts): code and symbol table now; the map only when something reads it.
      out = idx.instrument(source, { id: file, hash: 'h', file, format, symbolsKey: 'k' });
    } catch (e) {
      failed++;
      out = e;
    }
    const m1 = performance.now();
    const c1 = process.cpuUsage();
    const map = out instanceof Error ? '' : out.map.mappings;
    phases.map += ms(c1, process.cpuUsage());
    outputs.push([out, map]);
    perModule.push(m1 - m0);
  }
  const cpu2 = process.cpuUsage();
  // Hashed after the clock stops: the digest is the check, not part of the cost.
  const digest = createHash('sha256');
  for (const [out, map] of outputs) {
    if (out instanceof Error) digest.update(`failed ${out.message}\0`);
    else digest.update(out.code).update('\0').update(JSON.stringify(out.symbols)).update('\0').update(map);
  }
  console.log(
    JSON.stringify({
      modules: sources.length,
      failed,
      importMs,
      importCpuMs: ms(cpu0, cpu1),
      cpuMs: ms(cpu1, cpu2),
      wallMs: perModule.reduce((a, b) => a + b, 0),
      mapMs: phases.map,
      perModuleMedianMs: median(perModule),
      hash: digest.digest('hex'),
    }),
  );
}

/**
 * Another fresh process: the same work as instrument() (src/instrument/index.ts), step by step through the
 * instrumenter's internal modules, with the CPU time of each phase. Informational: index.ts is the reference.
 */
async function phasesChild(dist, listFile) {
  const list = JSON.parse(readFileSync(listFile, 'utf8'));
  const sources = list.map(([file, format]) => ({ file, format, source: readFileSync(file, 'utf8') }));
  const at = (m) => import(pathToFileURL(join(dist, 'src/instrument', m)).href);
  const { parseModule, isNotraceFile } = await at('parse.js');
  const { Analyzer } = await at('analyze.js');
  const { checkArrowParams, finish } = await at('funcs.js');
  const emit = await at('emit.js');
  const { buildMap } = await at('sourcemap.js');
  const phases = { parse: 0, analyze: 0, finish: 0, emit: 0, map: 0 };
  let last = process.cpuUsage();
  const lap = (k) => {
    const now = process.cpuUsage();
    phases[k] += ms(last, now);
    last = now;
  };
  for (const { file, format, source } of sources) {
    if (isNotraceFile(source)) continue;
    let parsed;
    try {
      parsed = parseModule(source, format, file);
    } catch {
      continue;
    }
    lap('parse');
    const analysis = new Analyzer(format, parsed.lineOf, parsed.notrace).program(parsed.ast);
    for (const f of analysis.funcs) {
      f.column = f.node.start - parsed.lineStarts[f.line - 1];
      if (f.isArrow && !f.notrace) checkArrowParams(f, source);
    }
    lap('analyze');
    const { slots, table } = finish(analysis.funcs);
    lap('finish');
    const edits = [];
    for (const f of slots) {
      let d = 1;
      for (let p = f.parentFn; p !== null; p = p.parentFn) d++;
      emit.functionEdits(f, source, d, edits);
    }
    const header = emit.moduleHeader({
      slots,
      moduleScope: analysis.moduleScope,
      uniqueKey: '0123456789abcdef',
      id: file,
      hash: 'h',
      file,
      format,
      symbolsJson: '',
      symbolsKey: 'k',
    });
    edits.push(emit.headerEdit(parsed.ast, source, header));
    emit.sortEdits(edits);
    emit.applyEdits(source, edits);
    JSON.stringify(table);
    lap('emit');
    buildMap(source, edits, parsed.lineStarts, file);
    lap('map');
  }
  console.log(JSON.stringify(phases));
}

function nodeVersion(bin) {
  return execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
}

/** Records which files the start-up app loads, with their format, using a Node 24 synchronous load hook. */
function moduleList(work) {
  const node24 = join(root, 'node_modules/node24/bin/node');
  const out = join(work, 'loaded.jsonl');
  const recorder =
    `import { registerHooks } from 'node:module'; import { appendFileSync } from 'node:fs';` +
    `registerHooks({ load(url, c, next) { const r = next(url, c);` +
    // A require()d CommonJS file reaches the hook with no format (null): it is CommonJS.
    ` const f = r.format ?? (/\\.c?js$/.test(url) ? 'commonjs' : r.format);` +
    ` if (url.startsWith('file:') && (f === 'commonjs' || f === 'module'))` +
    ` appendFileSync(${JSON.stringify(out)}, JSON.stringify([url, f]) + '\\n'); return r; } });`;
  const r = spawnSync(
    node24,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(recorder)}`,
      join(root, 'bench/apps/startup-app.mjs'),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`instrument-speed: the start-up app failed:\n${r.stderr}`);
  const seen = new Set();
  const list = [];
  for (const line of readFileSync(out, 'utf8').trim().split('\n')) {
    const [url, format] = JSON.parse(line);
    const file = fileURLToPath(url);
    if (seen.has(file)) continue;
    seen.add(file);
    list.push([file, format]);
  }
  return list;
}

async function parent() {
  const work = mkdtempSync(join(tmpdir(), 'lp-instrument-speed-'));
  try {
    const list = moduleList(work);
    const listFile = join(work, 'list.json');
    (await import('node:fs')).writeFileSync(listFile, JSON.stringify(list));
    const bytes = list.reduce((n, [f]) => n + readFileSync(f).length, 0);
    console.log(`instrument-speed: ${list.length} modules, ${(bytes / 1e6).toFixed(1)} MB`);
    const nodes = opts.node ?? [
      process.execPath,
      join(root, 'node_modules/node22/bin/node'),
      join(root, 'node_modules/node24/bin/node'),
    ];
    const variants = { current: opts.current ?? join(root, 'dist') };
    if (opts.baseline !== undefined) variants.baseline = opts.baseline;
    const rounds = Number(opts.rounds);
    for (const bin of nodes) {
      const version = nodeVersion(bin);
      const run = (dist, extra = [], flags = []) => {
        const args = [...extra, self, '--child', dist, '--list', listFile, ...flags];
        const r = spawnSync(bin, args, { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`instrument-speed: child failed on ${version}:\n${r.stderr}`);
        return JSON.parse(r.stdout.trim().split('\n').pop());
      };
      if (opts.prof !== undefined) {
        run(variants.current, [
          '--cpu-prof',
          `--cpu-prof-dir=${opts.prof}`,
          `--cpu-prof-name=instrument-${version}.cpuprofile`,
        ]);
      }
      const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
      for (const dist of Object.values(variants)) run(dist); // warm the page cache, discarded
      for (const [name, dist] of Object.entries(variants)) {
        const p = run(dist, [], ['--phases']);
        const total = Object.values(p).reduce((a, b) => a + b, 0);
        const parts = Object.entries(p).map(
          ([k, v]) => `${k} ${v.toFixed(0)} (${((100 * v) / total).toFixed(0)}%)`,
        );
        console.log(`node ${version} ${name.padEnd(8)} phases, ms CPU: ${parts.join(', ')}`);
      }
      for (let r = 0; r < rounds; r++) {
        for (const name of shuffle(Object.keys(variants))) samples[name].push(run(variants[name]));
      }
      for (const [name, xs] of Object.entries(samples)) {
        const m = (k) => median(xs.map((x) => x[k]));
        const hashes = new Set(xs.map((x) => x.hash));
        console.log(
          `node ${version} ${name.padEnd(8)} CPU ${m('cpuMs').toFixed(0)} ms (${(m('cpuMs') / list.length).toFixed(2)} ms/module), ` +
            `of which map ${m('mapMs').toFixed(0)} ms; import ${m('importCpuMs').toFixed(0)} ms CPU; ` +
            `median module ${m('perModuleMedianMs').toFixed(2)} ms; failed ${xs[0].failed}; ` +
            `hash ${[...hashes].map((h) => h.slice(0, 12)).join(',')}`,
        );
      }
      if (variants.baseline !== undefined) {
        const ratio = (k) =>
          samples.current.map((x, i) => x[k] / samples.baseline[i][k]).sort((a, b) => a - b);
        const cpu = ratio('cpuMs');
        const noMap = samples.current
          .map((x, i) => (x.cpuMs - x.mapMs) / (samples.baseline[i].cpuMs - samples.baseline[i].mapMs))
          .sort((a, b) => a - b);
        const same = samples.current[0].hash === samples.baseline[0].hash;
        console.log(
          `node ${version} current/baseline CPU ratio ${median(cpu).toFixed(2)} (${cpu[0].toFixed(2)}–${cpu.at(-1).toFixed(2)}), ` +
            `without the map ${median(noMap).toFixed(2)}; output ${same ? 'byte-identical' : 'DIFFERS'}`,
        );
        if (!same) process.exitCode = 1;
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
