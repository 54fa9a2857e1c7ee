// The runtime's names for a module's functions (src/instrument's symbol table) tied to the builder's AST nodes.
import { Worker } from 'node:worker_threads';
import { LivepatchError, type LivepatchErrorCode } from '../errors.js';
import type { FuncSymbol, ModuleFormat, SymbolTable } from '../instrument/types.js';
import { forEachChild, isFunctionNode, markTracked, type N } from './ast.js';

type SymbolTableFn = (source: string, format: ModuleFormat, file?: string) => SymbolTable;
let symbolTableFn: SymbolTableFn | undefined;

/**
 * Loads `symbolTable` from src/instrument: the one place that decides names, so a built patch names functions
 * exactly as the runtime does. Throws EBUILD when src/instrument is missing.
 */
export async function loadSymbolTable(): Promise<SymbolTableFn> {
  if (symbolTableFn) return symbolTableFn;
  // A computed specifier: the builder compiles even where src/instrument is absent (it is a sibling part).
  const specifier = '../instrument/index.js';
  let mod: { symbolTable?: unknown };
  try {
    mod = (await import(specifier)) as { symbolTable?: unknown };
  } catch (e) {
    throw new LivepatchError('EBUILD', `cannot load the instrumenter: ${(e as Error).message}`, undefined, {
      cause: e,
    });
  }
  if (typeof mod.symbolTable !== 'function')
    throw new LivepatchError('EBUILD', "the instrumenter has no 'symbolTable' function");
  symbolTableFn = mod.symbolTable as SymbolTableFn;
  return symbolTableFn;
}

export interface LocatedFunc {
  sym: FuncSymbol;
  /** The function node (for a method: the FunctionExpression that is its value). */
  node: N;
  /** The method or property holding it, for class and object members. */
  member: N | null;
}

/** Every function node of the program with the member that holds it, by start offset of either. */
export function indexFunctions(program: N): {
  byStart: Map<number, LocatedFunc['node']>;
  memberOf: Map<N, N>;
} {
  const byStart = new Map<number, N>();
  const memberOf = new Map<N, N>();
  const visit = (n: N, parent: N | null): void => {
    if (isFunctionNode(n)) {
      byStart.set(n.start, n);
      if (
        parent &&
        (parent.type === 'MethodDefinition' ||
          parent.type === 'Property' ||
          parent.type === 'PropertyDefinition') &&
        parent.value === n
      ) {
        memberOf.set(n, parent);
        if (!byStart.has(parent.start)) byStart.set(parent.start, n);
      }
    }
    forEachChild(n, (c) => visit(c, n));
  };
  visit(program, null);
  return { byStart, memberOf };
}

/** Ties each symbol to its node. Throws EBUILD if the instrumenter's offsets do not land on a function. */
export function locate(table: SymbolTable, program: N, file: string): LocatedFunc[] {
  const { byStart, memberOf } = indexFunctions(program);
  return table.funcs.map((sym) => {
    const node = byStart.get(sym.start);
    if (!node)
      throw new LivepatchError(
        'EBUILD',
        `symbol '${sym.name}' of '${file}' does not start a function (offset ${sym.start})`,
      );
    markTracked(node);
    return { sym, node, member: memberOf.get(node) ?? null };
  });
}

/** Above this many characters a symbol table is computed in a worker thread (start-up costs ~30 ms). */
const WORKER_THRESHOLD = 1_000_000;

/**
 * The symbol table of one module version: in a worker thread for big sources (started before this returns, so the
 * caller can parse meanwhile), else at once. Rejects as symbolTable() throws (EINSTRUMENT for a module the instrumenter refuses).
 */
export function symbolTableAsync(source: string, format: ModuleFormat, file: string): Promise<SymbolTable> {
  const fn = symbolTableFn;
  if (fn === undefined) return loadSymbolTable().then((f) => f(source, format, file));
  if (source.length < WORKER_THRESHOLD) {
    try {
      return Promise.resolve(fn(source, format, file));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }
  // Started now, synchronously: the caller goes on to parse while the worker names.
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./symbol-worker.js', import.meta.url), {
      workerData: { source, format, file },
    });
    w.once('message', (m: { table?: SymbolTable; error?: { message: string; code?: string } }) => {
      void w.terminate();
      if (m.table) resolve(m.table);
      else
        reject(
          new LivepatchError(
            (m.error?.code as LivepatchErrorCode | undefined) ?? 'EBUILD',
            m.error?.message ?? 'symbol table failed',
          ),
        );
    });
    w.once('error', (e) =>
      reject(new LivepatchError('EBUILD', `cannot name functions of '${file}': ${e.message}`)),
    );
  });
}

/** The innermost of `funcs` containing source offset `offset`, or undefined at module level. */
export function innermostFunc(funcs: LocatedFunc[], offset: number): LocatedFunc | undefined {
  let best: LocatedFunc | undefined;
  for (const f of funcs)
    if (f.node.start <= offset && offset < f.node.end && (!best || f.node.start >= best.node.start)) best = f;
  return best;
}
