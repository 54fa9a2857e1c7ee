// The two trees being compared: which JavaScript files they hold, under which module ids, and in which format.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { contentHash, moduleIdentity, readPackageJson } from '../loader/module-id.js';
import type { ModuleFormat } from '../instrument/types.js';
import { LineIndex, parseSource } from './ast.js';
import type { ModuleSide } from './module-diff.js';
import { locate, symbolTableAsync } from './symbols.js';
import { topLevel } from './toplevel.js';
import { LivepatchError } from '../errors.js';
import { sourceText } from '../loader/hooks-sync.js';
import { cannotStrip, detectsAsModule, stripTypes, TS_UNSTRIPPABLE } from '../loader/strip-types.js';

const JS = /\.(c|m)?js$/;
// TypeScript that Node runs itself (type stripping): .ts, .mts, .cts; not declarations, not .tsx.
const TS = /\.(c|m)?ts$/;
const DECLARATIONS = /\.d\.(c|m)?ts$/;

/**
 * Directories and files a running service does not load: a package's tests, examples and benchmarks. Skipped
 * unless `--include-tests`; `--dry-run` lists what was skipped.
 */
const DEFAULT_SKIP_DIRS = new Set([
  'node_modules',
  '.git',
  'test',
  'tests',
  '__tests__',
  'example',
  'examples',
  'bench',
  'benchmark',
  'benchmarks',
  'coverage',
  '.github',
]);
const DEFAULT_SKIP_FILE = /\.(test|spec)\.(c|m)?[jt]s$/;

export interface TreeOptions {
  includeTests: boolean;
  /**
   * Compare TypeScript files too, as Node's own type stripping runs them (`node app.ts`): set when this Node
   * strips types, and neither a build step nor a published package makes the JavaScript that runs.
   */
  typescript?: boolean;
  /** Extra patterns: `*` matches within a path segment, `**` across segments; matched against the path in the tree. */
  exclude: string[];
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A pattern names a file, or a directory and everything below it.
  return new RegExp(`^${re}(/.*)?$`);
}

/** JavaScript files of a tree: path in the tree (forward slashes) → absolute path; plus what was skipped. */
export function listModules(
  root: string,
  opts: TreeOptions,
): { files: Map<string, string>; skipped: string[] } {
  const files = new Map<string, string>();
  const skipped: string[] = [];
  const excludes = opts.exclude.map(globToRegExp);
  const walk = (dir: string): void => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const abs = join(dir, e.name);
      const rel = relative(root, abs).split(sep).join('/');
      if (excludes.some((r) => r.test(rel))) {
        skipped.push(rel);
        continue;
      }
      if (e.isDirectory()) {
        if (e.name === 'node_modules' || e.name === '.git') continue;
        if (!opts.includeTests && DEFAULT_SKIP_DIRS.has(e.name)) {
          skipped.push(`${rel}/`);
          continue;
        }
        walk(abs);
      } else if (
        e.isFile() &&
        (JS.test(e.name) || (opts.typescript === true && TS.test(e.name) && !DECLARATIONS.test(e.name)))
      ) {
        if (!opts.includeTests && DEFAULT_SKIP_FILE.test(e.name)) {
          skipped.push(rel);
          continue;
        }
        files.set(rel, abs);
      }
    }
  };
  walk(root);
  return { files, skipped };
}

/**
 * As Node decides: .mjs and .cjs (.mts and .cts) by extension, .js (.ts) by the nearest package.json's "type"; for
 * a .ts under no "type", given its stripped code, as Node's syntax detection decides.
 */
export function moduleFormat(file: string, stripped?: string): ModuleFormat {
  if (file.endsWith('.mjs') || file.endsWith('.mts')) return 'module';
  if (file.endsWith('.cjs') || file.endsWith('.cts')) return 'commonjs';
  for (let d = dirname(file); ;) {
    const pkg = readPackageJson(d);
    if (pkg !== null && (pkg.type === 'module' || pkg.type === 'commonjs' || stripped === undefined))
      return pkg.type === 'module' ? 'module' : 'commonjs';
    const up = dirname(d);
    if (up === d || pkg !== null)
      return stripped !== undefined && detectsAsModule(stripped) ? 'module' : 'commonjs';
    d = up;
  }
}

export function readModuleBytes(abs: string): { bytes: Buffer; hash: string } {
  const bytes = readFileSync(abs);
  return { bytes, hash: contentHash(bytes) };
}

/**
 * Starts naming one version of a module (in a worker when big) and returns `finish`, which parses it on this
 * thread and completes it. Start both versions before finishing either. `finish` throws EBUILD (parse) or
 * EINSTRUMENT (symbol table).
 */
export function startSide(
  abs: string,
  rel: string,
  bytes: Buffer,
  hash: string,
): { finish: () => Promise<ModuleSide> } {
  let source = bytes.toString('utf8');
  if (TS.test(abs)) {
    // Node strips the types and runs the rest (strip-types.ts); the hash stays the file's, as at run time.
    const js = stripTypes(sourceText(bytes));
    if (js === undefined)
      throw new LivepatchError('EINSTRUMENT', `${rel}: ${cannotStrip() ?? TS_UNSTRIPPABLE}`);
    source = js;
  }
  const format = moduleFormat(abs, TS.test(abs) ? source : undefined);
  const pending = symbolTableAsync(source, format, rel);
  pending.catch(() => undefined); // observed in finish(); never an unhandled rejection meanwhile
  return {
    async finish() {
      const ast = parseSource(source, format, rel);
      const symbols = await pending;
      return {
        file: abs,
        rel,
        id: moduleIdentity(abs).id,
        hash,
        format,
        source,
        ast,
        lines: new LineIndex(source),
        symbols,
        funcs: locate(symbols, ast, rel),
        top: topLevel(ast),
      };
    },
  };
}
