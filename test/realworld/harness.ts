// Fetches a real npm package with `npm pack`, installs its test dependencies beside it, and runs its own test suite
// with or without the livepatch loader, reading the TAP summary and what the loader registered.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fixture, registerEntry, repoRoot } from '../helpers.js';
import type { RealPackage } from './packages.js';

/** Where fetched packages live between runs (git-ignored); one directory per name@version. */
export const cacheRoot = join(repoRoot, '.cache/realworld');
export const probeEntry = fixture('realworld', 'probe.mjs');

export type Prepared = { ok: true; dir: string; pkgDir: string } | { ok: false; skip: string };

const networkError =
  /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network/i;

function npm(args: string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync('npm', args, {
    cwd,
    encoding: 'utf8',
    timeout: 180_000,
    // npm run by `npm test` passes its own config down; the fetch must not inherit a prefix or a dry run.
    // Bounded retries, so an unreachable registry becomes a skip in seconds rather than minutes.
    env: cleanEnv({
      npm_config_loglevel: 'error',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
      npm_config_fetch_retries: '1',
      npm_config_fetch_timeout: '30000',
    }),
  });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** The environment for child processes: without the test runner's own markers and without any NODE_OPTIONS. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_TEST_CONTEXT' || k.startsWith('LIVEPATCH_')) continue;
    if (k.startsWith('npm_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function packageDirName(p: RealPackage): string {
  return `${p.name.replace('@', '').replace('/', '-')}-${p.version}`;
}

/**
 * Fetches `p` into .cache/realworld/<name>-<version>/package and installs its runtime and test dependencies in the
 * directory above it (so the package's own files are the "app" and its dependencies sit in node_modules). Safe when
 * two test processes do it at once: each works in a staging directory and the first rename wins.
 * Returns a skip reason only when the npm registry cannot be reached; any other failure throws.
 */
export function preparePackage(p: RealPackage): Prepared {
  const dir = join(cacheRoot, packageDirName(p));
  const pkgDir = join(dir, 'package');
  if (existsSync(join(dir, '.ready'))) return { ok: true, dir, pkgDir };
  mkdirSync(cacheRoot, { recursive: true });
  const staging = mkdtempSync(join(cacheRoot, `.staging-${packageDirName(p)}-`));
  try {
    const pack = npm(['pack', `${p.name}@${p.version}`, '--pack-destination', staging], staging);
    if (pack.status !== 0) {
      if (networkError.test(pack.out))
        return { ok: false, skip: `npm registry unreachable: ${firstLine(pack.out)}` };
      throw new Error(`npm pack ${p.name}@${p.version} failed:\n${pack.out}`);
    }
    const tgz = readdirSync(staging).find((f) => f.endsWith('.tgz'));
    if (tgz === undefined) throw new Error(`npm pack ${p.name}@${p.version} made no tarball:\n${pack.out}`);
    const tar = spawnSync('tar', ['xzf', tgz], { cwd: staging, encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`tar failed on ${tgz}: ${tar.stderr}`);
    rmSync(join(staging, tgz));

    const meta = JSON.parse(readFileSync(join(staging, 'package/package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const deps: Record<string, string> = { ...meta.dependencies };
    for (const entry of p.testDeps) {
      // 'name' takes the package's own range; 'name@range' overrides it (when the registry lacks that version).
      const at = entry.indexOf('@', 1);
      const d = at < 0 ? entry : entry.slice(0, at);
      const range = at < 0 ? meta.devDependencies?.[d] : entry.slice(at + 1);
      if (range === undefined) throw new Error(`'${d}' is not a devDependency of ${p.name}@${p.version}`);
      deps[d] = range;
    }
    const harness = { name: `livepatch-realworld-${packageDirName(p)}`, private: true, dependencies: deps };
    writeFileSync(join(staging, 'package.json'), JSON.stringify(harness, null, 2) + '\n');
    if (Object.keys(deps).length > 0) {
      const inst = npm(['install', '--ignore-scripts', '--no-package-lock'], staging);
      if (inst.status !== 0) {
        if (networkError.test(inst.out))
          return { ok: false, skip: `npm registry unreachable: ${firstLine(inst.out)}` };
        throw new Error(`npm install for ${p.name}@${p.version} failed:\n${inst.out}`);
      }
    }
    writeFileSync(join(staging, '.ready'), new Date().toISOString() + '\n');
    try {
      renameSync(staging, dir);
    } catch (e) {
      // Another process got there first; its copy is as good as ours.
      if (!existsSync(join(dir, '.ready'))) throw e;
    }
    return { ok: true, dir, pkgDir };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function firstLine(s: string): string {
  return (s.split('\n').find((l) => networkError.test(l)) ?? s.split('\n')[0] ?? '').trim();
}

/** The package's test files, relative to its directory, sorted (what its own glob selects). */
export function testFiles(p: RealPackage, pkgDir: string): string[] {
  return readdirSync(join(pkgDir, p.testDir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(p.testSuffix) && !f.split('/').includes('fixtures'))
    .map((f) => `${p.testDir}/${f}`)
    .sort();
}

export interface SuiteResult {
  exitCode: number | string;
  pass: number;
  fail: number;
  /** Names of failing assertions or tests (`not ok` lines), sorted, to compare beyond the counts. */
  failures: string[];
  /** Modules and functions the loader registered, summed over every process of the run. */
  modules: number;
  funcs: number;
  /** Ids of the registered modules, without repeats. */
  ids: string[];
  /** Processes that had a registry (every Node process of an instrumented run should). */
  processes: number;
  registryProcesses: number;
  ms: number;
  output: string;
}

export interface RunOptions {
  instrument: boolean;
  /** Extra environment (e.g. LIVEPATCH_* settings). */
  env?: Record<string, string>;
}

/** Runs the package's suite once with the Node.js binary running this test, and summarises it. */
export async function runSuite(
  p: RealPackage,
  dir: string,
  pkgDir: string,
  opts: RunOptions,
): Promise<SuiteResult> {
  const files = testFiles(p, pkgDir);
  if (files.length === 0) throw new Error(`no test files for ${p.name} in ${pkgDir}/${p.testDir}`);
  if (p.runner === 'node' && files.length !== 1)
    throw new Error(`${p.name}: a 'node' runner runs one script`);
  const args =
    p.runner === 'tape'
      ? [join(dir, 'node_modules/tape/bin/tape'), ...files]
      : p.runner === 'node'
        ? files
        : ['--test', '--test-reporter=tap', ...files];
  const work = mkdtempSync(join(tmpdir(), 'lp-realworld-'));
  const probeOut = join(work, 'probe.jsonl');
  const env = cleanEnv({
    ...opts.env,
    LP_REALWORLD_PROBE: probeOut,
    LIVEPATCH_CACHE_DIR: join(work, 'cache'),
  });
  if (opts.instrument) {
    env.NODE_OPTIONS = `--import ${pathToFileURL(registerEntry).href} --import ${pathToFileURL(probeEntry).href}`;
  } else {
    env.NODE_OPTIONS = `--import ${pathToFileURL(probeEntry).href}`;
  }
  const started = performance.now();
  try {
    const { code, output } = await run(process.execPath, args, pkgDir, env);
    const ms = performance.now() - started;
    const lastNumber = (re: RegExp) => {
      const all = [...output.matchAll(re)];
      return Number(all.at(-1)?.[1] ?? 0);
    };
    // A plain script has one result, its exit; its failure is named by the error it printed.
    const script = p.runner === 'node';
    const failures = script
      ? code === 0
        ? []
        : [
            output
              .split('\n')
              .find((l) => /Error\b/.test(l))
              ?.trim() ?? `exit ${code}`,
          ]
      : output
          .split('\n')
          .filter((l) => /^\s*not ok \d+/.test(l))
          .map((l) => l.trim().replace(/^not ok \d+\s*-?\s*/, ''))
          .sort();
    const lines = existsSync(probeOut)
      ? readFileSync(probeOut, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { registry: boolean; modules: { id: string; funcs: number }[] })
      : [];
    return {
      exitCode: code,
      pass: script ? Number(code === 0) : lastNumber(/^# pass\s+(\d+)/gm),
      fail: script ? Number(code !== 0) : lastNumber(/^# fail\s+(\d+)/gm),
      failures,
      modules: lines.reduce((n, l) => n + l.modules.length, 0),
      funcs: lines.reduce((n, l) => n + l.modules.reduce((m, x) => m + Math.max(0, x.funcs), 0), 0),
      ids: [...new Set(lines.flatMap((l) => l.modules.map((m) => m.id)))].sort(),
      processes: lines.length,
      registryProcesses: lines.filter((l) => l.registry).length,
      ms,
      output,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function run(
  bin: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | string; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    // A suite that hangs under instrumentation is a failure to report, not a test run that never ends.
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, output });
    });
  });
}
