// buildPatch: the whole of `livepatch build` as a function — inputs, module matching, comparison, plan, emission.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { isLivepatchError, LivepatchError } from '../errors.js';
import { signSource } from '../control/trust.js';
import { moduleIdentity } from '../loader/module-id.js';
import { compareModule } from './compare.js';
import type { Change, Refusal } from './module-diff.js';
import { emitPatch, type EmitObject, type Manifest } from './emit.js';
import { reachableFiles } from './entries.js';
import { prepareTrees, type TreeSources } from './inputs.js';
import { planModule } from './plan.js';
import { loadSymbolTable } from './symbols.js';
import { listModules, readModuleBytes, startSide } from './tree.js';
import { cannotStrip } from '../loader/strip-types.js';

export interface BuildOptions extends TreeSources {
  name?: string;
  description?: string;
  fixes?: string[];
  dryRun?: boolean;
  /** Where to write the patch; default `<name>.mjs` in the current directory. */
  output?: string;
  /** PEM Ed25519 private key file: writes `<output>.sig` beside the patch. */
  sign?: string;
  includeTests?: boolean;
  /** Accept changes in code that ran once at load (they are not applied) instead of refusing them. */
  ignoreLoadTime?: boolean;
  /** For --from/--to: compare every file, not only those reachable from the package's entry points. */
  allFiles?: boolean;
  exclude?: string[];
  /** Where npm tarballs are kept; default $LIVEPATCH_BUILD_CACHE or ~/.cache/livepatch/npm. */
  cacheDir?: string;
  /** Progress lines (fetching, building); default none. */
  log?: (line: string) => void;
}

export interface FuncReport {
  name: string;
  sympos: number;
  change: Change | 'helper' | 'constant';
  line: number;
  why?: string;
  newName?: string;
}

export interface ModuleReport {
  id: string;
  file: string;
  status: 'changed' | 'new' | 'removed' | 'no code change';
  oldHash?: string;
  newHash?: string;
  funcs: FuncReport[];
  notes: string[];
}

export interface BuildResult {
  /** True when a patch was made (or, with dryRun, could be made). */
  ok: boolean;
  name: string;
  source: Manifest['source'];
  modules: ModuleReport[];
  refusals: Refusal[];
  /** Set when nothing was refused but there is nothing to patch either. */
  message?: string;
  skipped: string[];
  /** The patch module's text (absent on refusal). */
  patch?: string;
  output?: string;
  signature?: string;
  stats: { oldFiles: number; newFiles: number; identical: number; compared: number; ms: number };
}

const NAME_RE = /^[a-z0-9_-]{1,64}$/;

function builderVersion(): string {
  try {
    return String(
      (
        JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
          version?: string;
        }
      ).version,
    );
  } catch {
    return '0.0.0';
  }
}

/** The new tree's `name@version` from its package.json, if it has one. */
function treeVersion(dir: string): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name?: unknown;
      version?: unknown;
    };
    if (typeof pkg.name === 'string' && typeof pkg.version === 'string') return `${pkg.name}@${pkg.version}`;
  } catch {}
  return undefined;
}

/** `minimist-1-2-6` for --to minimist@1.2.6, `lp-fix-cart` for --diff fix-cart.patch, `lp-shop-1-0-1` for a tree. */
function defaultName(o: BuildOptions): string {
  const base =
    o.to ??
    o.diff?.replace(/^.*\//, '').replace(/\.(patch|diff)$/, '') ??
    (o.new !== undefined ? (treeVersion(o.new) ?? o.new.replace(/\/+$/, '').replace(/^.*\//, '')) : 'patch');
  const n = `${o.to !== undefined ? '' : 'lp-'}${base}`
    .toLowerCase()
    .replace(/^@/, '')
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return n === '' ? 'patch' : n;
}

function unifiedDiff(oldAbs: string, newAbs: string, rel: string): string {
  const r = spawnSync('diff', ['-u', '--label', `a/${rel}`, '--label', `b/${rel}`, oldAbs, newAbs], {
    encoding: 'utf8',
  });
  return typeof r.stdout === 'string' ? r.stdout : '';
}

/**
 * Builds a patch from a source change. Returns the analysis and, unless refused or dryRun, the patch (written to
 * `output`). Throws LivepatchError: EINVAL for bad options, EBUILD when an input cannot be fetched, built or parsed.
 */
export async function buildPatch(o: BuildOptions): Promise<BuildResult> {
  const t0 = performance.now();
  const name = o.name ?? defaultName(o);
  if (!NAME_RE.test(name))
    throw new LivepatchError('EINVAL', `--name: '${name}' is not 1-64 characters of [a-z0-9_-]`);
  const log = o.log ?? (() => {});
  await loadSymbolTable(); // fail early, before fetching anything, if the instrumenter is missing
  const trees = prepareTrees({
    ...o,
    cacheDir:
      o.cacheDir ?? process.env.LIVEPATCH_BUILD_CACHE ?? join(homedir(), '.cache', 'livepatch', 'npm'),
    log,
  });
  try {
    const treeOpts = {
      includeTests: o.includeTests === true,
      exclude: o.exclude ?? [],
      // TypeScript is what runs only when Node strips it: not after a build step, never in a published package.
      typescript: o.build === undefined && trees.source.kind !== 'npm' && cannotStrip() === undefined,
    };
    const oldList = listModules(trees.oldDir, treeOpts);
    const newList = listModules(trees.newDir, treeOpts);
    if (trees.source.kind === 'npm' && o.allFiles !== true) {
      // A published package: only what Node can load from its entry points can be running.
      const ro = reachableFiles(trees.oldDir, oldList.files);
      const rn = reachableFiles(trees.newDir, newList.files);
      if (ro !== null && rn !== null) {
        const keep = new Set([...ro, ...rn]);
        for (const list of [oldList, newList])
          for (const rel of [...list.files.keys()])
            if (!keep.has(rel)) {
              list.files.delete(rel);
              list.skipped.push(rel);
            }
      }
    }
    const modules: ModuleReport[] = [];
    const refusals: Refusal[] = [];
    const objects: EmitObject[] = [];
    const diffs: string[] = [];
    const functions: Manifest['functions'] = [];
    const targets: Manifest['targets'] = [];
    let identical = 0;
    let compared = 0;
    for (const [rel, newAbs] of newList.files) {
      const oldAbs = oldList.files.get(rel);
      if (oldAbs === undefined) {
        modules.push({
          id: rel,
          file: rel,
          status: 'new',
          funcs: [],
          notes: ['new module: the running process has not loaded it, so there is nothing to patch'],
        });
        continue;
      }
      const ob = readModuleBytes(oldAbs);
      const nb = readModuleBytes(newAbs);
      if (ob.hash === nb.hash) {
        identical++;
        continue;
      }
      compared++;
      // Both versions at once: big modules are named in worker threads while this one parses.
      const oldStart = startSide(oldAbs, rel, ob.bytes, ob.hash);
      const newStart = startSide(newAbs, rel, nb.bytes, nb.hash);
      let oldSide;
      let newSide;
      try {
        oldSide = await oldStart.finish();
        newSide = await newStart.finish();
      } catch (e) {
        if (!isLivepatchError(e) || e.code !== 'EINSTRUMENT') throw e;
        await newStart.finish().catch(() => undefined);
        // The target loads such a module as it is, without slots: nothing in it can be patched.
        const id = moduleIdentity(oldAbs).id;
        refusals.push({
          module: id,
          where: `${rel}:1`,
          construct: `module cannot be instrumented (${e.message})`,
          remedy:
            'the target runs it without slots, so nothing in it can be live-patched; restart to update it',
        });
        modules.push({
          id,
          file: rel,
          status: 'changed',
          oldHash: ob.hash,
          newHash: nb.hash,
          funcs: [],
          notes: [],
        });
        continue;
      }
      const d = compareModule(oldSide, newSide, { ignoreLoadTime: o.ignoreLoadTime === true });
      const plan = planModule(d);
      const report: ModuleReport = {
        id: oldSide.id,
        file: rel,
        status: 'changed',
        oldHash: ob.hash,
        newHash: nb.hash,
        funcs: d.funcs
          .filter((f) => f.change !== 'unchanged')
          .map((f) => ({
            name: f.name,
            sympos: f.sympos,
            change: f.change,
            line: f.line,
            ...(f.why ? { why: f.why } : {}),
            ...(f.newName ? { newName: f.newName } : {}),
          })),
        notes: [...d.notes, ...plan.notes],
      };
      for (const f of report.funcs)
        if (f.change === 'new' && plan.inlined.includes(f.name.slice(f.name.lastIndexOf('>') + 1)))
          f.change = 'helper';
      for (const s of plan.shared) {
        const isNew = report.funcs.find((f) => f.change === 'new' && f.name === s.name);
        if (isNew) isNew.change = s.kind;
        else
          report.funcs.push({ name: s.name, sympos: 1, change: s.kind, line: newSide.lines.line(s.start) });
      }
      if (report.funcs.length === 0 && d.refusals.length === 0) report.status = 'no code change';
      modules.push(report);
      refusals.push(...d.refusals, ...plan.refusals);
      if (plan.funcs.length > 0) {
        objects.push({ module: oldSide.id, hash: ob.hash, plan });
        targets.push({ module: oldSide.id, file: rel, hash: ob.hash, newHash: nb.hash });
        for (const f of plan.funcs)
          functions.push({ module: oldSide.id, name: f.name, sympos: f.sympos, change: f.why });
        if (trees.source.kind !== 'diff') diffs.push(unifiedDiff(oldAbs, newAbs, rel));
      }
    }
    for (const rel of oldList.files.keys())
      if (!newList.files.has(rel))
        modules.push({
          id: rel,
          file: rel,
          status: 'removed',
          funcs: [],
          notes: ['removed module: the running copy stays as it is'],
        });
    const source = { ...trees.source, diff: trees.source.diff ?? diffs.join('') };
    const result: BuildResult = {
      ok: false,
      name,
      source,
      modules,
      refusals,
      skipped: [...new Set([...oldList.skipped, ...newList.skipped])],
      stats: { oldFiles: oldList.files.size, newFiles: newList.files.size, identical, compared, ms: 0 },
    };
    if (refusals.length === 0 && objects.length === 0) result.message = 'no functional changes found';
    else if (refusals.length === 0) {
      result.ok = true;
      const manifest: Manifest = {
        name,
        ...(o.description !== undefined ? { description: o.description } : {}),
        fixes: o.fixes ?? [],
        source,
        targets,
        functions,
        builder: { name: 'livepatch build', version: builderVersion() },
        created: new Date().toISOString(),
      };
      result.patch = emitPatch(name, manifest, objects);
      if (!o.dryRun) {
        const output = resolve(o.output ?? `${name}.mjs`);
        writeFileSync(output, result.patch);
        result.output = output;
        if (o.sign !== undefined) {
          const sig = signSource(Buffer.from(result.patch), readFileSync(resolve(o.sign), 'utf8'));
          result.signature = `${output}.sig`;
          writeFileSync(result.signature, JSON.stringify(sig) + '\n');
        }
      }
    }
    result.stats.ms = Math.round(performance.now() - t0);
    return result;
  } finally {
    trees.cleanup();
  }
}
