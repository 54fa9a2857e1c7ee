// `livepatch build` (issue 5): command-line flags, the printed analysis, and the exit code. buildPatch does the work.
import { isLivepatchError, LivepatchError } from '../errors.js';
import { buildPatch, type BuildOptions, type BuildResult } from './build.js';

export { buildPatch };
export type { BuildOptions, BuildResult };
export type { FuncReport, ModuleReport } from './build.js';
export type { Refusal } from './module-diff.js';

export interface BuildIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export const BUILD_USAGE = `usage: livepatch build (--old DIR --new DIR | --source DIR --diff FIX.patch | --from PKG@V1 --to PKG@V2)
                       [--build "CMD"] [--name N] [--description TEXT] [--fixes ID,...] [--sign KEY.pem]
                       [-o FILE] [--dry-run] [--json] [--include-tests] [--all-files] [--ignore-load-time] [--exclude GLOB]... [--cache DIR]`;

const VALUE_FLAGS: Record<string, keyof BuildOptions> = {
  '--old': 'old',
  '--new': 'new',
  '--source': 'source',
  '--diff': 'diff',
  '--from': 'from',
  '--to': 'to',
  '--build': 'build',
  '--name': 'name',
  '--description': 'description',
  '--sign': 'sign',
  '-o': 'output',
  '--output': 'output',
  '--cache': 'cacheDir',
};

/** Parses build flags. Throws LivepatchError EINVAL naming the flag. */
export function parseBuildArgs(argv: string[]): { options: BuildOptions; json: boolean } {
  const options: BuildOptions = {};
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new LivepatchError('EINVAL', `${flag}: expected a value`);
      return v;
    };
    const key = VALUE_FLAGS[flag];
    if (key !== undefined) (options as Record<string, unknown>)[key] = value();
    else if (flag === '--fixes')
      options.fixes = [
        ...(options.fixes ?? []),
        ...value()
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      ];
    else if (flag === '--exclude') options.exclude = [...(options.exclude ?? []), value()];
    else if (flag === '--dry-run') options.dryRun = true;
    else if (flag === '--include-tests') options.includeTests = true;
    else if (flag === '--all-files') options.allFiles = true;
    else if (flag === '--ignore-load-time') options.ignoreLoadTime = true;
    else if (flag === '--json') json = true;
    else throw new LivepatchError('EINVAL', `unknown option '${arg}'`);
  }
  return { options, json };
}

/** The analysis as people read it: one line per changed, new, removed or refused item. */
export function formatResult(r: BuildResult, dryRun: boolean): string {
  const lines: string[] = [];
  lines.push(`livepatch build: '${r.name}' from ${r.source.old} to ${r.source.new}`);
  lines.push(
    `  ${r.stats.newFiles} modules, ${r.stats.identical} identical, ${r.stats.compared} compared in ${r.stats.ms} ms`,
  );
  for (const m of r.modules) {
    const hashes = m.oldHash ? ` (${m.oldHash.slice(0, 12)} -> ${(m.newHash ?? '').slice(0, 12)})` : '';
    lines.push(`module '${m.id}' ${m.status}${hashes}`);
    for (const f of m.funcs) {
      const pos = f.sympos > 1 ? ` [sympos ${f.sympos}]` : '';
      const extra = f.newName
        ? f.change === 'renamed'
          ? ` -> '${f.newName}' (same body: nothing to patch)`
          : ` (now '${f.newName}')`
        : f.why && f.why !== 'changed'
          ? ` (${f.why})`
          : f.change === 'new'
            ? ' (not in the patch: no patched code calls it)'
            : f.change === 'removed'
              ? ' (stays in the target; patched code no longer calls it)'
              : '';
      const what = f.change === 'helper' || f.change === 'constant' ? `${f.change} in patch` : f.change;
      lines.push(`  ${what.padEnd(16)} '${f.name}'${pos} ${m.file}:${f.line}${extra}`);
    }
    for (const n of m.notes) lines.push(`  note: ${n}`);
  }
  if (r.skipped.length > 0)
    lines.push(
      `skipped (not loaded by a service; --include-tests, --all-files to compare): ${r.skipped.join(', ')}`,
    );
  for (const x of r.refusals) lines.push(`refused: ${x.where}: ${x.construct}; ${x.remedy}`);
  if (r.refusals.length > 0)
    lines.push(
      `livepatch build: '${r.name}': ${r.refusals.length} change(s) cannot be live-patched; no patch written`,
    );
  else if (r.message) lines.push(`livepatch build: '${r.name}': ${r.message}`);
  else if (dryRun) lines.push(`livepatch build: '${r.name}': a patch can be made (dry run: nothing written)`);
  else {
    lines.push(`livepatch build: '${r.name}': wrote ${r.output ?? ''}`);
    if (r.signature) lines.push(`livepatch build: '${r.name}': signed: ${r.signature}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * The `livepatch build` command. Returns the exit code: 0 patch made (or could be, with --dry-run), 1 refused or
 * failed, 2 bad usage. Never throws.
 */
export async function runBuild(argv: string[], io: BuildIo): Promise<number> {
  if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help')) {
    io.stdout(`${BUILD_USAGE}\n`);
    return 0;
  }
  let parsed: { options: BuildOptions; json: boolean };
  try {
    parsed = parseBuildArgs(argv);
  } catch (e) {
    io.stderr(`livepatch build: ${(e as Error).message}\n${BUILD_USAGE}\n`);
    return 2;
  }
  const { options, json } = parsed;
  if (!json) options.log = (l) => io.stderr(`livepatch build: ${l}\n`);
  try {
    const r = await buildPatch(options);
    if (json) {
      const { patch: _patch, ...rest } = r;
      io.stdout(JSON.stringify(rest, null, 2) + '\n');
    } else io.stdout(formatResult(r, options.dryRun === true));
    return r.ok ? 0 : 1;
  } catch (e) {
    const usage = isLivepatchError(e) && e.code === 'EINVAL';
    if (json)
      io.stdout(
        JSON.stringify({
          ok: false,
          error: { code: isLivepatchError(e) ? e.code : 'EBUILD', message: (e as Error).message },
        }) + '\n',
      );
    io.stderr(`livepatch build: ${(e as Error).message}\n${usage ? BUILD_USAGE + '\n' : ''}`);
    return usage ? 2 : 1;
  }
}
