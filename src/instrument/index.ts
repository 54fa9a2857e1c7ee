// The instrumenter (issue 2): JavaScript source in; instrumented source, source map and symbol table out. No I/O.
import { createHash } from 'node:crypto';
import { LivepatchError } from '../errors.js';
import { Analyzer, type Analysis } from './analyze.js';
import { checkArrowParams, finish, type FuncInfo } from './funcs.js';
import { applyEdits, functionEdits, headerEdit, moduleHeader, sortEdits, type Edit } from './emit.js';
import { isNotraceFile, parseModule, type Parsed } from './parse.js';
import { ReservedName } from './scope.js';
import { buildMap, composeMap } from './sourcemap.js';
import type { InstrumentOptions, InstrumentResult, ModuleFormat, SymbolTable } from './types.js';

export type * from './types.js';
export { isNotraceFile };
export { originalSourceText } from './source-text.js';

/**
 * Changes whenever the instrumenter's output for the same input may change; part of the loader's cache key
 * and of the slot object's unique key. `<ABI version>.<instrumenter revision>`.
 */
export const INSTRUMENTER_VERSION = '3.0';

interface Analyzed {
  parsed: Parsed;
  analysis: Analysis;
  slots: FuncInfo[];
  table: SymbolTable;
}

function analyze(source: string, format: ModuleFormat, file: string): Analyzed {
  const parsed = parseModule(source, format, file);
  let analysis: Analysis;
  try {
    analysis = new Analyzer(format, parsed.lineOf, parsed.notrace).program(parsed.ast);
  } catch (e) {
    if (e instanceof ReservedName) {
      throw new LivepatchError('EINSTRUMENT', `cannot instrument '${file}': ${e.message}`, {
        file,
        identifier: e.identifier,
      });
    }
    // Anything else is a bug here or an AST too deep to walk: still one error code for the loader to act on.
    throw new LivepatchError(
      'EINSTRUMENT',
      `cannot instrument '${file}': ${(e as Error).message}`,
      { file },
      {
        cause: e,
      },
    );
  }
  const lineStarts = parsed.lineStarts;
  for (const f of analysis.funcs) {
    f.column = f.node.start - (lineStarts[f.line - 1] as number);
    if (f.isArrow && !f.notrace) checkArrowParams(f, source);
  }
  refuseNestedInMovedParams(analysis.funcs);
  const { slots, table } = finish(analysis.funcs);
  return { parsed, analysis, slots, table };
}

/**
 * An arrow whose parameters move into its body cannot also hold functions in them (their own edits would be
 * moved, unapplied); such arrows are refused. `funcs` is in walk order, where a function's children follow it.
 */
function refuseNestedInMovedParams(funcs: FuncInfo[]): void {
  for (let k = 0; k < funcs.length; k++) {
    const f = funcs[k] as FuncInfo;
    if (!f.moveParams) continue;
    const params = f.node.params;
    const end = params[params.length - 1].end as number;
    const next = funcs[k + 1];
    if (next !== undefined && next.node.start < end && next.node.start > f.node.start) {
      f.moveParams = false;
      f.refused = 'arrow with functions in its destructured or default parameters';
    }
  }
}

/**
 * The symbol table of `source` (livepatch's kallsyms): the same names `instrument()` gives, without emitting code.
 * The patch builder matches functions of an old and a new version by name and sympos.
 * Throws LivepatchError('EINSTRUMENT') on a syntax error or a reserved `__lp$` identifier.
 */
export function symbolTable(source: string, format: ModuleFormat, file = '<source>'): SymbolTable {
  if (isNotraceFile(source)) return { funcs: [], unpatchable: [] };
  return analyze(source, format, file).table;
}

/**
 * Instruments one module (docs/internals/abi.md): the module header, a prologue in every function, a source map
 * (composed with `opts.inputMap` when given) and the symbol table. A `notrace-file` module comes back unchanged.
 * Throws LivepatchError('EINSTRUMENT') naming the file and the cause.
 */
export function instrument(source: string, opts: InstrumentOptions): InstrumentResult {
  if (isNotraceFile(source)) {
    const lineStarts = parseModule(source, opts.format, opts.file).lineStarts;
    return withLazyMap({ code: source, symbols: { funcs: [], unpatchable: [] } }, () =>
      opts.inputMap ? opts.inputMap : buildMap(source, [], lineStarts, opts.file),
    );
  }
  const { parsed, analysis, slots, table } = analyze(source, opts.format, opts.file);
  const edits: Edit[] = [];
  for (const f of slots) functionEdits(f, source, depthOf(f), edits, opts.format);
  const uniqueKey = createHash('sha256')
    .update(`${INSTRUMENTER_VERSION}\0${opts.id}\0${opts.hash}\0${opts.file}`)
    .digest('hex')
    .slice(0, 16);
  const header = moduleHeader({
    slots,
    moduleScope: analysis.moduleScope,
    uniqueKey,
    id: opts.id,
    hash: opts.hash,
    file: opts.file,
    format: opts.format,
    symbolsJson: opts.symbolsKey === undefined ? JSON.stringify(table) : '',
    symbolsKey: opts.symbolsKey,
  });
  edits.push(headerEdit(parsed.ast, source, header));
  sortEdits(edits);
  const code = applyEdits(source, edits);
  return withLazyMap({ code, symbols: table }, () =>
    opts.inputMap
      ? composeMap(opts.inputMap, edits, parsed.lineStarts, opts.file)
      : buildMap(source, edits, parsed.lineStarts, opts.file),
  );
}

/**
 * The source map is built on first read of `map` (a token-level map of a 9 MB file is a sizeable string, and a
 * loader only needs it when source maps are enabled), then kept.
 */
function withLazyMap(
  result: Omit<InstrumentResult, 'map'>,
  build: () => InstrumentResult['map'],
): InstrumentResult {
  let map: InstrumentResult['map'] | undefined;
  return Object.defineProperty(result, 'map', {
    get: () => (map ??= build()),
    enumerable: true,
    configurable: true,
  }) as InstrumentResult;
}

function depthOf(f: FuncInfo): number {
  let d = 1;
  for (let p = f.parentFn; p !== null; p = p.parentFn) d++;
  return d;
}
