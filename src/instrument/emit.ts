// Writes the slot ABI into the source (docs/internals/abi.md §1–2): the module header and one prologue per function.
// Every edit stays within one line, so no line moves; edits are collected, sorted, and applied in one pass.
import type { FuncInfo } from './funcs.js';
import { selfOf } from './funcs.js';
import type { Binding, Scope } from './scope.js';

type N = any;

export interface Edit {
  start: number;
  end: number;
  text: string;
  /** Among edits at one offset: lower runs first. Closing text of inner arrows precedes that of outer ones. */
  rank: number;
}

/** Escapes a value as a JS literal that holds no line terminator (JSON leaves U+2028/U+2029 raw). */
export function literal(value: unknown): string {
  return JSON.stringify(value).replace(/[\u2028\u2029]/g, (c) => (c === '\u2028' ? '\\u2028' : '\\u2029'));
}

/** A single-quoted literal: JSON text is full of double quotes, which this leaves unescaped. */
function quoted(text: string): string {
  return `'${text.replace(/[\\'\n\r\u2028\u2029]/g, (c) => ESCAPES[c] as string)}'`;
}
const ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  "'": "\\'",
  '\n': '\\n',
  '\r': '\\r',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * Whether `f` can run before its module's header has: in an ES module, a top-level function declaration is created
 * when the module is instantiated, and a module of its import cycle may call it before this module evaluates, as
 * may anything it calls; so may the functions nested in it. In CommonJS nothing runs before the header.
 */
export function runsBeforeHeader(f: FuncInfo, format: 'module' | 'commonjs'): boolean {
  if (format !== 'module') return false;
  let top = f;
  while (top.parentFn !== null) top = top.parentFn;
  return top.node.type === 'FunctionDeclaration' && top.outerScope.kind === 'module';
}

/** The prologue edits of one function. */
export function functionEdits(
  f: FuncInfo,
  source: string,
  depth: number,
  edits: Edit[],
  format: 'module' | 'commonjs',
): void {
  const node = f.node;
  const i = f.index;
  // `void 0`, never `undefined`: old code names a parameter `undefined` (`function (window, undefined) {…}`).
  const self = selfOf(f);
  const scope = scopeAccessor(f);
  let args: string[];
  let moved = '';
  if (f.moveParams) {
    // Parameters become temporaries (keeping fn.length: a default stays a default) and are destructured first
    // thing in the body, from the values as received: `let {0: {a}, 1: b = 1} = [__lp$p0, __lp$p1];`.
    const temps: string[] = [];
    const parts: string[] = [];
    const first = node.params[0];
    const multiLine = /[\n\r\u2028\u2029]/.test(
      source.slice(first.start, node.params[node.params.length - 1].end),
    );
    node.params.forEach((p: N, k: number) => {
      const rest = p.type === 'RestElement';
      const temp = rest ? '__lp$r' : `__lp$p${k}`;
      const text = rest ? `...${temp}` : p.type === 'AssignmentPattern' ? `${temp} = void 0` : temp;
      if (multiLine) {
        // The original text stays in place as a comment, so every line keeps its content.
        edits.push({ start: p.start, end: p.start, text: `${text}/*`, rank: 0 });
        edits.push({ start: p.end, end: p.end, text: '*/', rank: 0 });
      } else if (rest) {
        // Only the rest's target is replaced: `...` and what follows it stay as written (source-text.ts).
        edits.push({ start: p.argument.start, end: p.argument.end, text: temp, rank: 0 });
      } else edits.push({ start: p.start, end: p.end, text, rank: 0 });
      const target = rest ? p.argument : p;
      parts.push(`${k}: ${source.slice(target.start, target.end).replace(/\r\n?|[\n\u2028\u2029]/g, ' ')}`);
      temps.push(temp);
    });
    args = temps.map((t, j) => (node.params[j].type === 'RestElement' ? `...${t}` : t));
    moved = ` let {${parts.join(', ')}} = [${temps.join(', ')}];`;
  } else {
    args = node.params.map((p: N) => (p.type === 'RestElement' ? `...${p.argument.name}` : p.name));
  }
  // A concise arrow's temporary is named apart (`__lp$e`): it is how source-text.ts tells the block it writes from
  // one the author wrote, when it gives a function's source text back as it was.
  const concise = node.body.type !== 'BlockStatement';
  const temp = concise ? '__lp$e' : '__lp$f';
  const forward = forwardOf(f, args, temp);
  const m = slotObject(i);
  // A missing argument is `undefined` to the dispatcher, and it returns a function or `undefined`: the short
  // forms below are the same prologue in fewer bytes, which V8 scans at every start (abi.md §2).
  const call = scope !== undefined ? `${self ?? 'void 0'}, ${scope}` : (self ?? '');
  // Before the header has run, `__lp$m` is in its temporal dead zone: such a function reads its slot under a
  // `try`, and runs as written until its module has evaluated (abi.md §2). The dispatcher never throws, so the
  // catch catches that ReferenceError alone; the forwarded call is outside it.
  const prologue = runsBeforeHeader(f, format)
    ? `let ${temp}; try { ${temp} = ${m}.f${i} && ${m}.r${i}(${call}); } catch {} if (${temp}) return ${forward};${moved}`
    : `if (${m}.f${i}) { const ${temp} = ${m}.r${i}(${call}); if (${temp}) return ${forward}; }${moved}`;

  if (concise) {
    // A concise arrow body becomes a block on the same line; the parentheses keep `return` from ending early.
    const arrow = arrowEnd(source, node);
    edits.push({ start: arrow, end: arrow, text: ` { ${prologue} return (`, rank: depth });
    edits.push({ start: node.end, end: node.end, text: ') }', rank: -depth });
    return;
  }
  let at = node.body.start + 1;
  // One character before the prologue, always: a space, or the `;` a directive written without one needs.
  let lead = ' ';
  for (const s of node.body.body) {
    if (s.directive === undefined) break;
    at = s.end;
    lead = source.charCodeAt(s.end - 1) === 59 ? ' ' : ';';
  }
  edits.push({ start: at, end: at, text: lead + prologue, rank: depth });
}

function forwardOf(f: FuncInfo, args: string[], temp: string): string {
  const node = f.node;
  // The registry's Reflect.construct: the module may declare a `Reflect` of its own (ABI 3).
  if (f.kind === 'constructor') return `__lp$R.construct(${temp}, arguments, new.target)`;
  let call: string;
  if (f.isArrow) call = `${temp}.call(this${args.map((a) => ', ' + a).join('')})`;
  else if (
    f.simpleParams &&
    !f.usesArguments &&
    !f.usesEval &&
    !f.duplicateParams &&
    !f.paramNames.some((n) => f.scope.names.get(n)?.kind !== 'param')
  ) {
    // Explicit parameters: no `arguments` object on the unpatched path (prologue-bench.md).
    call = `${temp}.call(this${args.map((a) => ', ' + a).join('')})`;
  } else call = `${temp}.apply(this, arguments)`;
  return node.generator ? `yield* ${call}` : call;
}

/** SCOPE: an arrow returning accessors over exactly the captured variables, or undefined when there are none. */
function scopeAccessor(f: FuncInfo): string | undefined {
  if (f.captures.size === 0) return undefined;
  const parts: string[] = [];
  for (const [name, b] of f.captures) {
    parts.push(`get ${name}() { return ${name}; }`);
    if (hasSetter(b)) parts.push(`set ${name}(__lp$v) { ${name} = __lp$v; }`);
  }
  return `() => ({ ${parts.join(', ')} })`;
}

/**
 * Whether an accessor gets a setter. A function declaration the module never reassigns gets none: patch code
 * replaces a function through its slot, never by rebinding it, and a setter is an assignment V8 sees, which marks
 * the binding as maybe-assigned and costs every call of it from a closure (bench/micro.mjs tiny-cjs: 1.33x on
 * Node 20 with the setter, 1.0x without).
 */
function hasSetter(b: Binding): boolean {
  if (b.kind === 'function') return b.writes > 1;
  return b.kind === 'var' || b.kind === 'let' || b.kind === 'param';
}

/** The offset just after an arrow's `=>`, skipping comments between the parameters and it. */
function arrowEnd(source: string, node: N): number {
  const last = node.params[node.params.length - 1];
  let i: number = last ? last.end : node.start;
  const end: number = node.body.start;
  while (i < end) {
    const c = source.charCodeAt(i);
    if (c === 47 && source.charCodeAt(i + 1) === 42) i = source.indexOf('*/', i + 2) + 2;
    else if (c === 47 && source.charCodeAt(i + 1) === 47) {
      while (i < end && !/[\n\r\u2028\u2029]/.test(source[i] as string)) i++;
    } else if (c === 61 && source.charCodeAt(i + 1) === 62) return i + 2;
    else i++;
  }
  return end;
}

export interface HeaderInput {
  slots: FuncInfo[];
  moduleScope: Scope;
  uniqueKey: string;
  id: string;
  hash: string;
  file: string;
  format: 'module' | 'commonjs';
  /** The symbol table's JSON, written into the header; or, when `symbolsKey` is given, kept out of it. */
  symbolsJson: string;
  /** The key under which whoever runs the code hands the registry the symbol table (abi.md §3). */
  symbolsKey?: string | undefined;
}

/**
 * Functions per slot object. V8 keeps an object literal's fast map only up to 1020 properties; past that it
 * becomes a dictionary and every prologue check turns into a hash lookup (5x slower typescript.js). So a big module
 * gets several slot objects, `__lp$m`, `__lp$m1`, …, each with its own unique first key, and the registry gets
 * `__lp$s`, an object of accessors over all of them: to the runtime it is the same `f<N>`/`r<N>` object.
 */
export const SLOTS_PER_OBJECT = 500;

function slotObject(index: number): string {
  const c = Math.floor(index / SLOTS_PER_OBJECT);
  return c === 0 ? '__lp$m' : `__lp$m${c}`;
}

/** The module header (abi.md §1), one line of text. */
export function moduleHeader(h: HeaderInput): string {
  const chunks: string[][] = [[`__lp$u_${h.uniqueKey}: 0`]];
  for (const f of h.slots) {
    const c = Math.floor(f.index / SLOTS_PER_OBJECT);
    if (chunks[c] === undefined) chunks[c] = [`__lp$u_${h.uniqueKey}_${c}: 0`];
    (chunks[c] as string[]).push(`f${f.index}: false, r${f.index}: void 0`);
  }
  const objects = chunks.map(
    (fields, c) => `${c === 0 ? '__lp$m' : `__lp$m${c}`} = { ${fields.join(', ')} }`,
  );
  // A big module's slot objects reach the runtime as one object of accessors, made by the registry (ABI 3: the
  // module may declare its own `Object`).
  const slots =
    chunks.length > 1
      ? `__lp$R.slotFacade([${objects.map((_, c) => (c === 0 ? '__lp$m' : `__lp$m${c}`)).join(', ')}])`
      : '__lp$m';
  const acc: string[] = [];
  for (const [name, b] of h.moduleScope.names) {
    if (name === 'arguments') continue; // inside a getter it would name the getter's own arguments
    acc.push(`get ${name}() { return ${name}; }`);
    if (hasSetter(b)) acc.push(`set ${name}(__lp$v) { ${name} = __lp$v; }`);
  }
  // The table is a third of the bytes this adds to a module, all of which V8 scans at every start, while it is
  // read only when something asks for symbols: the loader keeps it beside the cached code and names it by key.
  const symbols =
    h.symbolsKey !== undefined ? `symbolsKey: ${literal(h.symbolsKey)}` : `symbols: ${quoted(h.symbolsJson)}`;
  // One closure at evaluation, not two per binding: the accessor object is made when patch code first asks.
  return (
    // The registry by a name no module can declare (`__lp$` is reserved): `globalThis` and `Symbol` may be the
    // module's own, hoisted and still undefined here (`var Symbol = root.Symbol`, lodash's standalone packages).
    `const ${objects.join(', ')}; const __lp$R = typeof __lp$registry === 'undefined' ? void 0 : __lp$registry; ` +
    `if (__lp$R !== void 0) __lp$R.registerModule({ abi: 3, id: ${literal(h.id)}, hash: ${literal(h.hash)}, ` +
    `file: ${literal(h.file)}, format: ${literal(h.format)}, slots: ${slots}, ${symbols}, ` +
    `bindings: () => ({ ${acc.join(', ')} }) }); `
  );
}

/** Where the header goes: the first statement that is not a directive (abi.md §1). */
export function headerEdit(ast: N, source: string, text: string): Edit {
  let after = -1;
  for (const s of ast.body) {
    if (s.directive !== undefined) {
      after = s.end;
      continue;
    }
    return { start: s.start, end: s.start, text, rank: -1e9 };
  }
  if (after >= 0) {
    const lead = source.charCodeAt(after - 1) === 59 ? ' ' : '; ';
    return { start: after, end: after, text: lead + text, rank: -1e9 };
  }
  // An empty module: after a hashbang line if there is one, else at the start.
  if (source.startsWith('#!')) {
    const nl = source.search(/[\n\r\u2028\u2029]/);
    if (nl < 0) return { start: source.length, end: source.length, text: '\n' + text, rank: 0 };
    const at = source.charCodeAt(nl) === 13 && source.charCodeAt(nl + 1) === 10 ? nl + 2 : nl + 1;
    return { start: at, end: at, text, rank: 0 };
  }
  return { start: 0, end: 0, text, rank: 0 };
}

/** Applies sorted, non-overlapping edits. */
export function applyEdits(source: string, edits: Edit[]): string {
  const out: string[] = [];
  let pos = 0;
  for (const e of edits) {
    out.push(source.slice(pos, e.start), e.text);
    pos = e.end;
  }
  out.push(source.slice(pos));
  return out.join('');
}

export function sortEdits(edits: Edit[]): Edit[] {
  return edits.sort((a, b) => a.start - b.start || a.rank - b.rank);
}
