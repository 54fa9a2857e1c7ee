// What comparing two versions of a module produces: the two sides, each function's change, and the refusals
// (where, what, and what to do instead) that every part of the comparison reports in the same shape.
import type { ModuleFormat, SymbolTable } from '../instrument/types.js';
import type { LineIndex, N } from './ast.js';
import type { ScopeInfo } from './scope.js';
import type { LocatedFunc } from './symbols.js';
import type { TopLevel } from './toplevel.js';

/** One version of one module, parsed and named. */
export interface ModuleSide {
  /** Absolute path in its tree. */
  file: string;
  /** Path inside the tree, with forward slashes: what messages show. */
  rel: string;
  id: string;
  hash: string;
  format: ModuleFormat;
  source: string;
  ast: N;
  lines: LineIndex;
  symbols: SymbolTable;
  funcs: LocatedFunc[];
  top: TopLevel;
}

export type Change = 'unchanged' | 'changed' | 'new' | 'removed' | 'renamed';

export interface FuncDiff {
  /** The running (old) name for changed/unchanged/removed/renamed; the new name for new functions. */
  name: string;
  sympos: number;
  change: Change;
  /** Line in the new version (old version for removed). */
  line: number;
  old?: LocatedFunc;
  new?: LocatedFunc;
  /** Why an unchanged-looking function is patched anyway, e.g. it reads a changed constant. */
  why?: string;
  /** For renamed: the new name. */
  newName?: string;
  /** Changed code in a function that runs once while the module loads: never patched. */
  loadTime?: boolean;
}

export interface Refusal {
  module: string;
  /** `path/in/tree.js:LINE`. */
  where: string;
  /** The construct, in a few words with the name in quotes. */
  construct: string;
  /** What to do instead. */
  remedy: string;
}

export interface ModuleDiff {
  id: string;
  rel: string;
  old: ModuleSide;
  new: ModuleSide;
  funcs: FuncDiff[];
  /** Module-level functions renamed with a changed body: new name → running name (see renamedFunctions). */
  renamed: Map<string, string>;
  /** Changed module-level constants whose new value moves into the patch. */
  movedConstants: Set<string>;
  /** New module-level `var`/`let`s of plain data that nothing assigns: carried into the patch like constants. */
  settled: Set<string>;
  /** The old version's scopes, computed only when a `var`/`let` must be checked for writes. */
  oldScopes?: ScopeInfo;
  refusals: Refusal[];
  notes: string[];
  scopes: ScopeInfo;
}

export function refusal(side: ModuleSide, node: N | number, construct: string, remedy: string): Refusal {
  const line = typeof node === 'number' ? node : side.lines.line(node.start);
  return { module: side.id, where: `${side.rel}:${line}`, construct, remedy };
}

/** One line of a statement's source, shortened, for messages. */
export function excerpt(side: ModuleSide, node: N): string {
  const text = side.source.slice(node.start, node.end).replace(/\s+/g, ' ').trim();
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
