// The builder's inputs made into two directories: given trees, a tree plus a diff, or two published npm versions;
// then, when asked, each one built with the project's own build command.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LivepatchError } from '../errors.js';
import { applyDiff } from './diff-apply.js';

export interface PreparedTrees {
  oldDir: string;
  newDir: string;
  /** What the patch came from, for its manifest. */
  source: { kind: 'trees' | 'diff' | 'npm'; old: string; new: string; diff?: string };
  cleanup: () => void;
}

/** Where the two versions come from: two trees (old, new), a tree and a diff (source, diff), or npm (from, to). */
export interface TreeSources {
  old?: string;
  new?: string;
  source?: string;
  diff?: string;
  from?: string;
  to?: string;
  /** A shell command run in both trees before comparing (e.g. `npm run build`). */
  build?: string;
}

export interface InputOptions extends TreeSources {
  /** Where npm tarballs are kept between runs. */
  cacheDir: string;
  log: (line: string) => void;
}

/** Copies a tree without node_modules and .git; the copy links to the original's node_modules for its build. */
function copyTree(from: string, to: string): void {
  cpSync(from, to, {
    recursive: true,
    filter: (src) => {
      const base = src.slice(src.lastIndexOf('/') + 1);
      return base !== 'node_modules' && base !== '.git';
    },
  });
  if (existsSync(join(from, 'node_modules')))
    symlinkSync(join(from, 'node_modules'), join(to, 'node_modules'), 'dir');
}

function splitSpec(spec: string, flag: string): { name: string; version: string } {
  const at = spec.lastIndexOf('@');
  if (at <= 0) throw new LivepatchError('EINVAL', `${flag}: expected PACKAGE@VERSION, got '${spec}'`);
  return { name: spec.slice(0, at), version: spec.slice(at + 1) };
}

/**
 * Fetches `name@version` with `npm pack` into the cache (once) and unpacks it into `dest`. Returns the package
 * directory. Throws EBUILD with npm's own message when the registry refuses.
 */
export function fetchPackage(
  spec: string,
  flag: string,
  cacheDir: string,
  dest: string,
  log: (l: string) => void,
): string {
  const { name, version } = splitSpec(spec, flag);
  mkdirSync(cacheDir, { recursive: true });
  const tarball = join(cacheDir, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (!existsSync(tarball)) {
    log(`fetching '${name}@${version}' with npm pack`);
    const r = spawnSync('npm', ['pack', `${name}@${version}`, '--pack-destination', cacheDir, '--silent'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (r.status !== 0 || !existsSync(tarball))
      throw new LivepatchError(
        'EBUILD',
        `cannot fetch '${name}@${version}': ${(r.stderr || r.error?.message || 'npm pack failed').trim()}`,
        {
          package: name,
          version,
        },
      );
  }
  mkdirSync(dest, { recursive: true });
  const t = spawnSync('tar', ['-xzf', tarball, '-C', dest], { encoding: 'utf8' });
  if (t.status !== 0) throw new LivepatchError('EBUILD', `cannot unpack '${tarball}': ${t.stderr.trim()}`);
  // npm tarballs hold one top directory, normally `package/`.
  const top = readdirSync(dest)[0];
  if (top === undefined) throw new LivepatchError('EBUILD', `'${tarball}' is empty`);
  return join(dest, top);
}

function runBuild(dir: string, cmd: string, log: (l: string) => void): void {
  log(`running '${cmd}' in '${dir}'`);
  const r = spawnSync(cmd, { cwd: dir, shell: true, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0)
    throw new LivepatchError(
      'EBUILD',
      `build command '${cmd}' failed in '${dir}' (exit ${String(r.status)}): ${(r.stderr || r.stdout).trim().slice(-2000)}`,
    );
}

/** Makes the old and new directories. Throws EINVAL for a bad combination of inputs, EBUILD when a step fails. */
export function prepareTrees(o: InputOptions): PreparedTrees {
  const work = mkdtempSync(join(tmpdir(), 'livepatch-build-'));
  const cleanup = () => rmSync(work, { recursive: true, force: true });
  try {
    let oldDir: string;
    let newDir: string;
    let source: PreparedTrees['source'];
    if (o.from !== undefined || o.to !== undefined) {
      if (o.from === undefined || o.to === undefined)
        throw new LivepatchError('EINVAL', '--from and --to go together');
      oldDir = fetchPackage(o.from, '--from', o.cacheDir, join(work, 'old'), o.log);
      newDir = fetchPackage(o.to, '--to', o.cacheDir, join(work, 'new'), o.log);
      source = { kind: 'npm', old: o.from, new: o.to };
    } else if (o.source !== undefined || o.diff !== undefined) {
      if (o.source === undefined || o.diff === undefined)
        throw new LivepatchError('EINVAL', '--source and --diff go together');
      const src = resolve(o.source);
      if (!existsSync(src)) throw new LivepatchError('EINVAL', `--source: no such directory '${o.source}'`);
      const diff = readFileSync(resolve(o.diff), 'utf8');
      newDir = join(work, 'new');
      copyTree(src, newDir);
      applyDiff(newDir, diff);
      if (o.build !== undefined) {
        oldDir = join(work, 'old');
        copyTree(src, oldDir);
      } else oldDir = src;
      source = { kind: 'diff', old: src, new: `${src} + ${o.diff}`, diff };
    } else if (o.old !== undefined && o.new !== undefined) {
      oldDir = resolve(o.old);
      newDir = resolve(o.new);
      for (const [flag, d] of [
        ['--old', oldDir],
        ['--new', newDir],
      ] as const)
        if (!existsSync(d)) throw new LivepatchError('EINVAL', `${flag}: no such directory '${d}'`);
      if (o.build !== undefined) {
        // Build copies: the user's trees stay as they were.
        copyTree(oldDir, join(work, 'old'));
        copyTree(newDir, join(work, 'new'));
        oldDir = join(work, 'old');
        newDir = join(work, 'new');
      }
      source = { kind: 'trees', old: resolve(o.old), new: resolve(o.new) };
    } else
      throw new LivepatchError(
        'EINVAL',
        'expected --old DIR --new DIR, --source DIR --diff FILE, or --from PKG@V1 --to PKG@V2',
      );
    if (o.build !== undefined) {
      runBuild(oldDir, o.build, o.log);
      runBuild(newDir, o.build, o.log);
    }
    return { oldDir, newDir, source, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}
