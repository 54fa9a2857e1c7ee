// Types of the instrumenter's output: the symbol table (livepatch's kallsyms) and the instrumented module.
// The exact meaning of every field is in docs/internals/abi.md §3.

export type FuncKind = 'function' | 'arrow' | 'method' | 'getter' | 'setter' | 'constructor';

export interface FuncSymbol {
  index: number;
  name: string;
  sympos: number;
  kind: FuncKind;
  async: boolean;
  generator: boolean;
  line: number;
  column: number;
  start: number;
  end: number;
  length: number;
  parent: number;
  self: boolean;
  scope: string[];
  usesThis: boolean;
  usesSuper: boolean;
  usesPrivate: boolean;
  usesArguments: boolean;
  usesNewTarget: boolean;
}

export interface Unpatchable {
  name: string;
  line: number;
  reason: string;
}

export interface SymbolTable {
  funcs: FuncSymbol[];
  unpatchable: Unpatchable[];
}

export type ModuleFormat = 'module' | 'commonjs';

export interface InstrumentOptions {
  /** Module id, DESIGN.md §6: `<package name>/<path inside the package>`. */
  id: string;
  /** sha256 hex of the file's bytes on disk (before any transpiler). */
  hash: string;
  /** Absolute path of the file, for messages and the registry. */
  file: string;
  format: ModuleFormat;
  /** A source map that the input already carries (e.g. tsx's), to be composed with ours. */
  inputMap?: SourceMapV3 | undefined;
  /**
   * When given, the module header names the symbol table by this key instead of carrying it (abi.md §3): the
   * caller hands `result.symbols` to the registry under the key (`provideSymbols`) before the code runs. A loader
   * does, so that V8 does not scan the table at every start. Without it the output is self-contained.
   */
  symbolsKey?: string | undefined;
}

export interface SourceMapV3 {
  version: 3;
  file?: string;
  sources: string[];
  sourcesContent?: (string | null)[];
  names: string[];
  mappings: string;
  sourceRoot?: string;
}

export interface InstrumentResult {
  code: string;
  map: SourceMapV3;
  symbols: SymbolTable;
}
