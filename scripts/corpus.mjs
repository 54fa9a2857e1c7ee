// `npm run corpus`: every case in corpus/ — a real published npm fix — built, live-patched into a service under load,
// and checked: exploitable before, not after, normal answers unchanged, no request failed, `disable` un-fixes it.
// Usage: node scripts/corpus.mjs [CASE...] [--json] [--no-write] [--timeout SECONDS]
// With no CASE, all cases run and the table is written to docs/corpus.md (unless --no-write).
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

const root = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const corpusDir = join(root, 'corpus');
const npmCache = join(root, '.cache/corpus/npm');
const installCache = join(root, '.cache/corpus/installs');
const register = join(root, 'dist/src/loader/register.js');
const mainCli = join(root, 'dist/src/cli/main.js');

const args = process.argv.slice(2);
const asJson = args.includes('--json');
const timeoutIdx = args.indexOf('--timeout');
const caseTimeoutMs = (timeoutIdx >= 0 ? Number(args[timeoutIdx + 1]) : 120) * 1000;
const wanted = args.filter((a, i) => !a.startsWith('--') && (timeoutIdx < 0 || i !== timeoutIdx + 1));
const write = wanted.length === 0 && !args.includes('--no-write');

/** One case as corpus/<name>/case.json describes it. */
function readCases() {
  const names = readdirSync(corpusDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(corpusDir, e.name, 'case.json')))
    .map((e) => e.name)
    .sort();
  for (const w of wanted)
    if (!names.includes(w)) {
      console.error(`corpus: no case '${w}' (cases: ${names.join(', ')})`);
      process.exit(2);
    }
  return names
    .filter((n) => wanted.length === 0 || wanted.includes(n))
    .map((name) => ({
      name,
      dir: join(corpusDir, name),
      ...JSON.parse(readFileSync(join(corpusDir, name, 'case.json'), 'utf8')),
    }));
}

/** Runs a command to completion, killed after `ms`; every child is tracked so a timed-out case can end them. */
function run(cmd, argv, opts, live) {
  return new Promise((resolve) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    p.on('close', (code) => {
      live.delete(p);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** The vulnerable version with its dependencies, installed once from its tarball and kept under .cache/corpus. */
function installVulnerable(c) {
  const dir = join(installCache, `${c.package}@${c.vulnerable}`);
  if (existsSync(join(dir, 'done'))) return join(dir, 'node_modules');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  mkdirSync(npmCache, { recursive: true });
  const tarball = join(npmCache, `${c.package.replace(/^@/, '').replace('/', '-')}-${c.vulnerable}.tgz`);
  if (!existsSync(tarball)) {
    const r = spawnSync(
      'npm',
      ['pack', `${c.package}@${c.vulnerable}`, '--pack-destination', npmCache, '--silent'],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) throw new Error(`cannot fetch '${c.package}@${c.vulnerable}': ${r.stderr.trim()}`);
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'corpus-install', private: true }));
  const r = spawnSync(
    'npm',
    [
      'install',
      '--no-save',
      '--no-package-lock',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--silent',
      tarball,
    ],
    { cwd: dir, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`cannot install '${c.package}@${c.vulnerable}': ${r.stderr.trim()}`);
  writeFileSync(join(dir, 'done'), '');
  return join(dir, 'node_modules');
}

/** GET /?in=INPUT on a keep-alive agent; resolves with the parsed body, rejects on any failure. */
function ask(agent, port, input, ms = 20_000) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/?in=${encodeURIComponent(input)}`, agent, timeout: ms },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
          try {
            resolve(JSON.parse(body));
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

/** A few keep-alive clients asking the normal input in a loop; every answer must equal `expected`. */
function startLoad(port, input, expected, clients = 4) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const stats = { ok: 0, failed: 0, firstFailure: '' };
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        const r = await ask(agent, port, input);
        if (isDeepStrictEqual(r.result, expected)) stats.ok++;
        else throw new Error(`normal answer changed: ${JSON.stringify(r.result).slice(0, 200)}`);
      } catch (e) {
        stats.failed++;
        stats.firstFailure ||= String(e.message);
      }
    }
  });
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return stats;
    },
  };
}

/** Starts the service under the loader and resolves with its port once it listens. */
function startService(cwd, probe, env, live) {
  const p = spawn(process.execPath, ['--import', register, 'service.mjs', probe], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(p);
  let out = '';
  let err = '';
  p.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const port = new Promise((resolve, reject) => {
    p.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const m = out.match(/listening (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    p.on('exit', (code) =>
      reject(new Error(`service exited (${code}) before listening: ${err.trim().slice(-500)}`)),
    );
  });
  return { proc: p, port, stderr: () => err };
}

/** What a failed command said, in one line: its first lines, where a stack trace names the error. */
const firstLines = (text) => text.trim().split('\n').slice(0, 8).join(' ').slice(0, 600);
const patchName = (c) => `${c.package}-${c.fixed.replaceAll('.', '-')}`;
const secs = (ms) => (ms / 1000).toFixed(1) + ' s';

/** One case, start to end. Returns its row; never throws (a broken case is a row saying so). */
async function runCase(c, live) {
  const row = {
    case: c.name,
    advisory: c.advisory,
    kind: c.kind,
    package: `${c.package} ${c.vulnerable} → ${c.fixed}`,
    module: c.format,
    result: 'failed',
    reason: '',
    buildMs: null,
    applyMs: null,
    requests: 0,
    failedRequests: 0,
  };
  const work = mkdtempSync(join(tmpdir(), `lp-corpus-${c.name}-`));
  try {
    const modules = installVulnerable(c);
    cpSync(modules, join(work, 'node_modules'), { recursive: true });
    cpSync(join(corpusDir, 'service.mjs'), join(work, 'service.mjs'));
    for (const f of readdirSync(c.dir))
      if (f !== 'case.json') cpSync(join(c.dir, f), join(work, f), { recursive: true });
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: `corpus-${c.name}`, private: true }));
    const run_ = join(work, 'run');
    mkdirSync(run_, { mode: 0o700 });
    const env = { ...process.env, XDG_RUNTIME_DIR: run_, LIVEPATCH_INSTALL_DIR: join(work, 'installed') };
    env.LIVEPATCH_CACHE_DIR = 'off'; // instrument afresh: no cache shared between cases or with the user's
    delete env.NODE_OPTIONS;
    delete env.LIVEPATCH_TRUSTED_KEYS;

    // The build runs while the service starts (they are independent): its time is the builder's wall time, a little
    // high on a busy machine.
    const patch = join(work, 'fix.mjs');
    const t0 = performance.now();
    const building = run(
      process.execPath,
      [
        mainCli,
        'build',
        // A case with a 'diff' builds from the published fix adapted by hand (the case says how), applied to the
        // vulnerable version's own files.
        ...(c.diff
          ? [
              '--source',
              join(work, 'node_modules', c.package),
              '--diff',
              join(c.dir, c.diff),
              '--name',
              patchName(c),
            ]
          : ['--from', `${c.package}@${c.vulnerable}`, '--to', `${c.package}@${c.fixed}`]),
        '--cache',
        npmCache,
        '--fixes',
        c.advisory,
        '-o',
        patch,
        '--json',
        ...(c.buildArgs ?? []),
      ],
      { cwd: work, env },
      live,
    ).then((r) => ({ ...r, ms: performance.now() - t0 }));

    const svc = startService(
      work,
      c.probe,
      { ...env, LIVEPATCH_INSTRUMENT: c.instrument ?? c.package },
      live,
    );
    const port = await svc.port;
    const agent = new http.Agent({ keepAlive: true });
    try {
      const normal = (await ask(agent, port, c.normal)).result;
      const before = await ask(agent, port, c.exploit);
      if (before.exploited !== true) {
        row.reason = `the exploit does not work on the vulnerable version: ${JSON.stringify(before).slice(0, 200)}`;
        return row;
      }

      const built = await building;
      row.buildMs = built.ms;
      let analysis = null;
      try {
        analysis = JSON.parse(built.stdout);
      } catch {}
      if (built.code !== 0 || !existsSync(patch)) {
        const refusals = analysis?.refusals ?? [];
        row.result = 'refused';
        // The first three say enough for the table; the JSON output keeps them all.
        const shown = refusals.slice(0, 3).map((r) => `${r.where}: ${r.construct}`);
        if (refusals.length > 3) shown.push(`${refusals.length} refusals in all`);
        row.reason = refusals.length
          ? shown.join('; ')
          : `builder exited ${built.code}: ${built.stderr.trim().split('\n').slice(0, 6).join(' ').slice(0, 400)}`;
        row.refusals = refusals;
        return row;
      }

      const load = startLoad(port, c.normal, normal);
      await new Promise((r) => setTimeout(r, 200));
      const t1 = performance.now();
      const loaded = await run(
        process.execPath,
        [mainCli, 'load', patch, '--pid', String(svc.proc.pid)],
        { env },
        live,
      );
      row.applyMs = performance.now() - t1;
      const transition = (loaded.stdout + loaded.stderr).match(/transition complete \((\d+(?:\.\d+)?) ms\)/);
      row.transitionMs = transition ? Number(transition[1]) : null;
      if (loaded.code !== 0) {
        await load.stop();
        row.reason = `livepatch load failed: ${firstLines(loaded.stderr || loaded.stdout)}; service stderr: ${firstLines(svc.stderr()) || '(empty)'}`;
        return row;
      }
      await new Promise((r) => setTimeout(r, 200));
      const after = await ask(agent, port, c.exploit);
      const normalAfter = (await ask(agent, port, c.normal)).result;
      const name = analysis?.name ?? patchName(c);
      const disabled = await run(
        process.execPath,
        [mainCli, 'disable', name, '--pid', String(svc.proc.pid)],
        { env },
        live,
      );
      const back = await ask(agent, port, c.exploit);
      const stats = await load.stop();
      row.requests = stats.ok + stats.failed;
      row.failedRequests = stats.failed;
      const problems = [];
      if (after.exploited !== false)
        problems.push(`still exploitable after the patch: ${JSON.stringify(after).slice(0, 200)}`);
      if (!isDeepStrictEqual(normalAfter, normal)) problems.push('normal behaviour changed after the patch');
      if (disabled.code !== 0)
        problems.push(`livepatch disable failed: ${firstLines(disabled.stderr || disabled.stdout)}`);
      else if (back.exploited !== true) problems.push('disable did not bring the exploit back');
      if (stats.failed > 0)
        problems.push(`${stats.failed} request(s) failed under load: ${stats.firstFailure}`);
      if (stats.ok === 0) problems.push('no request completed under load');
      if (problems.length) {
        row.reason = problems.join('; ');
        return row;
      }
      row.result = c.handWritten ? 'needed a hand-written part' : 'patched automatically';
      row.reason = c.handWritten ?? c.note ?? '';
      return row;
    } finally {
      agent.destroy();
      svc.proc.kill('SIGKILL');
      await building;
    }
  } catch (e) {
    row.reason = String(e.message ?? e);
    return row;
  } finally {
    for (const p of live) p.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
}

/** runCase bounded in time: at the limit its processes are killed and the row says so. */
async function runBounded(c) {
  const live = new Set();
  let timer;
  const limit = new Promise((resolve) => {
    timer = setTimeout(() => {
      for (const p of live) p.kill('SIGKILL');
      resolve(null);
    }, caseTimeoutMs);
  });
  const t0 = performance.now();
  const row = (await Promise.race([runCase(c, live), limit])) ?? {
    case: c.name,
    advisory: c.advisory,
    kind: c.kind,
    package: `${c.package} ${c.vulnerable} → ${c.fixed}`,
    module: c.format,
    result: 'failed',
    reason: `timed out after ${secs(caseTimeoutMs)}`,
    buildMs: null,
    applyMs: null,
  };
  clearTimeout(timer);
  row.totalMs = performance.now() - t0;
  return row;
}

function table(rows) {
  const lines = [
    '| case | advisory | kind | package | result | build | apply | requests (failed) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const result = r.reason ? `${r.result}: ${r.reason}` : r.result;
    lines.push(
      `| ${r.case} | ${r.advisory} | ${r.kind} | ${r.package} (${r.module}) | ${result.replaceAll('|', '\\|')} | ` +
        `${r.buildMs == null ? '–' : secs(r.buildMs)} | ${r.applyMs == null ? '–' : secs(r.applyMs)} | ` +
        `${r.requests ? `${r.requests} (${r.failedRequests})` : '–'} |`,
    );
  }
  return lines.join('\n');
}

function summary(rows) {
  const auto = rows.filter((r) => r.result === 'patched automatically').length;
  const hand = rows.filter((r) => r.result === 'needed a hand-written part').length;
  const refused = rows.filter((r) => r.result === 'refused').length;
  const failed = rows.length - auto - hand - refused;
  const pct = rows.length ? Math.round((100 * auto) / rows.length) : 0;
  return `${rows.length} cases: ${auto} patched automatically (${pct}%), ${hand} with a hand-written part, ${refused} refused by the builder, ${failed} failed`;
}

function writeDoc(rows, wallMs) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const intro = readFileSync(join(corpusDir, 'README.md'), 'utf8').trim();
  const text = `${intro}

## Last run

${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, livepatch ${pkg.version} (commit ${gitHead()}), Node.js ${process.version}, ${secs(wallMs)} in all.

${summary(rows)}.

${table(rows)}
`;
  writeFileSync(join(root, 'docs/corpus.md'), text);
}

function gitHead() {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

const cases = readCases();
const t0 = performance.now();
const rows = [];
for (const c of cases) {
  const row = await runBounded(c);
  rows.push(row);
  if (!asJson)
    console.error(
      `corpus: ${c.name}: ${row.result}${row.reason ? ` (${row.reason.slice(0, 300)})` : ''} [${secs(row.totalMs)}]`,
    );
}
const wallMs = performance.now() - t0;
if (asJson) console.log(JSON.stringify({ node: process.version, rows }, null, 2));
else console.log(`\n${table(rows)}\n\n${summary(rows)} in ${secs(wallMs)}`);
if (write) writeDoc(rows, wallMs);
process.exitCode = rows.every((r) => r.result !== 'failed') ? 0 : 1;
