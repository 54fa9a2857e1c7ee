// What the walker learns about each function, and the finishing pass that turns it into the symbol table.
import type { FuncKind, FuncSymbol, SymbolTable, Unpatchable } from './types.js';
import type { Binding, Scope, ScopeOwner } from './scope.js';

type N = any;

export interface FuncInfo extends ScopeOwner {
  node: N;
  kind: FuncKind;
  /** Full symbol name (`outer>inner`), before sympos. */
  name: string;
  parentFn: FuncInfo | null;
  isArrow: boolean;
  /** The function scope (parameters and body declarations). */
  scope: Scope;
  /** The scope the function expression or declaration sits in. */
  outerScope: Scope;
  /** Counter for the positions of this function's anonymous children. */
  anon: number;
  /** Candidate SELF: a name to look up from outerScope (declaration, `const f = …`). */
  selfVar: string | undefined;
  /** Candidate SELF: a named function expression's own name. */
  selfFname: string | undefined;
  /** Candidate SELF reached through a class's inner binding, valid unless `selfShadow` is shadowed. */
  selfExpr: string | undefined;
  selfShadow: string | undefined;
  usesThis: boolean;
  usesSuper: boolean;
  usesPrivate: boolean;
  usesArguments: boolean;
  usesNewTarget: boolean;
  usesEval: boolean;
  /** Variables of enclosing non-module scopes this function (or anything nested in it) refers to. */
  captures: Map<string, Binding>;
  /** Names referred to inside the parameter list (arrows with non-simple parameters only). */
  paramRefs: Set<string> | undefined;
  paramNames: string[];
  simpleParams: boolean;
  duplicateParams: boolean;
  notrace: boolean;
  /** Why the instrumenter leaves this function alone (other than notrace). */
  refused: string | undefined;
  /** Arrow whose parameters move into the body (see emit.ts). */
  moveParams: boolean;
  line: number;
  column: number;
  index: number;
}

export function newFunc(
  node: N,
  kind: FuncKind,
  name: string,
  parentFn: FuncInfo | null,
  outerScope: Scope,
  scope: Scope,
): FuncInfo {
  return {
    node,
    kind,
    name,
    parentFn,
    isArrow: node.type === 'ArrowFunctionExpression',
    scope,
    outerScope,
    anon: 0,
    selfVar: undefined,
    selfFname: undefined,
    selfExpr: undefined,
    selfShadow: undefined,
    usesThis: false,
    usesSuper: false,
    usesPrivate: false,
    usesArguments: false,
    usesNewTarget: false,
    usesEval: false,
    captures: new Map(),
    paramRefs: undefined,
    paramNames: [],
    simpleParams: true,
    duplicateParams: false,
    notrace: false,
    refused: undefined,
    moveParams: false,
    line: 0,
    column: 0,
    index: -1,
  };
}

/** fn.length: the parameters before the first default or rest. */
export function paramLength(params: N[]): number {
  let n = 0;
  for (const p of params) {
    if (p.type === 'AssignmentPattern' || p.type === 'RestElement') break;
    n++;
  }
  return n;
}

/** The SELF expression, or undefined when naming the function could change behaviour. */
export function selfOf(f: FuncInfo): string | undefined {
  if (f.selfFname !== undefined) return f.scope.names.has(f.selfFname) ? undefined : f.selfFname;
  if (f.selfVar !== undefined) {
    if (f.scope.names.has(f.selfVar)) return undefined;
    const b = f.outerScope.lookup(f.selfVar);
    if (b === undefined || b.writes > 1 || b.kind === 'param' || b.kind === 'import') return undefined;
    // Naming a binding nobody captures, in a scope with no heap context, would give that scope one: an
    // allocation on every call of the enclosing function. Where the context exists anyway it costs one slot.
    if (b.scope.kind !== 'module' && !b.captured && !b.scope.hasCaptured) return undefined;
    return f.selfVar;
  }
  if (f.selfExpr !== undefined && f.selfShadow !== undefined && !f.scope.names.has(f.selfShadow))
    return f.selfExpr;
  return undefined;
}

const LINE_BREAK = /[\n\r\u2028\u2029]/;
const UNJOINABLE = /\/\/|\/\*|\*\/|`|\\[\n\r\u2028\u2029]|<!--|-->/;

/**
 * Decides whether an arrow with destructured or default parameters can have them moved into its body
 * (emit.ts) with exactly the same meaning; sets `moveParams`, or `refused` with the reason.
 */
export function checkArrowParams(f: FuncInfo, source: string): void {
  const params = f.node.params as N[];
  const needsMove = params.some(
    (p) => p.type !== 'Identifier' && !(p.type === 'RestElement' && p.argument.type === 'Identifier'),
  );
  if (!needsMove) return;
  const text = source.slice(params[0].start, params[params.length - 1].end);
  const body = f.scope.bodyNames ?? new Set<string>();
  // Parameters over several lines stay where they are inside a comment, and their copy in the body is joined
  // onto one line: safe unless a line break means something there (a // comment, a template, a line
  // continuation, an HTML-like comment) or the text would close the comment early.
  if (LINE_BREAK.test(text) && UNJOINABLE.test(text)) {
    f.refused = 'arrow with multi-line parameters holding comments, templates or line continuations';
  } else if (f.paramNames.some((n) => body.has(n))) {
    f.refused = 'arrow whose body redeclares a parameter';
  } else if ([...(f.paramRefs ?? [])].some((n) => body.has(n) || n === 'eval')) {
    f.refused = 'arrow whose parameter defaults refer to names its body declares';
  } else {
    f.moveParams = true;
  }
}

export interface Finished {
  /** Instrumented functions in slot order. */
  slots: FuncInfo[];
  table: SymbolTable;
}

/** Orders functions by start, numbers the slots, gives sympos, and builds the symbol table. */
export function finish(all: FuncInfo[]): Finished {
  all.sort((a, b) => a.node.start - b.node.start);
  const slots: FuncInfo[] = [];
  const unpatchable: Unpatchable[] = [];
  for (const f of all) {
    if (f.notrace) unpatchable.push({ name: f.name, line: f.line, reason: 'notrace' });
    else if (f.refused !== undefined) unpatchable.push({ name: f.name, line: f.line, reason: f.refused });
    else {
      f.index = slots.length;
      slots.push(f);
    }
  }
  // sympos counts every function of a name, instrumented or not, so it never depends on notrace.
  const seen = new Map<string, number>();
  const sympos = new Map<FuncInfo, number>();
  for (const f of all) {
    const n = (seen.get(f.name) ?? 0) + 1;
    seen.set(f.name, n);
    sympos.set(f, n);
  }
  const funcs: FuncSymbol[] = slots.map((f) => {
    let parent = f.parentFn;
    while (parent !== null && parent.index < 0) parent = parent.parentFn;
    return {
      index: f.index,
      name: f.name,
      sympos: sympos.get(f) ?? 1,
      kind: f.kind,
      async: f.node.async === true,
      generator: f.node.generator === true,
      line: f.line,
      column: f.column,
      start: f.node.start,
      end: f.node.end,
      length: paramLength(f.node.params),
      parent: parent === null ? -1 : parent.index,
      self: selfOf(f) !== undefined,
      scope: [...f.captures.keys()],
      usesThis: f.usesThis,
      usesSuper: f.usesSuper,
      usesPrivate: f.usesPrivate,
      usesArguments: f.usesArguments,
      usesNewTarget: f.usesNewTarget,
    };
  });
  return { slots, table: { funcs, unpatchable } };
}
