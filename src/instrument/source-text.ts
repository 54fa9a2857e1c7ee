// A function's source text as its author wrote it, from the instrumented text V8 holds: what
// `Function.prototype.toString` returns under the loader (loader/source-text.ts), so that code which ships a
// function elsewhere (`page.evaluate(fn)`, `new Worker(`(${fn})()`)`) or reads its parameter names sees no slot.
//
// Every edit emit.ts makes inside a function is undone here from the text alone, which holds all it needs:
// - a prologue: one character (a space, or the `;` a directive without one needs), then `if (__lp$mC.fN) { const
//   __lp$f = …; }` (or, in a function that may run before its module's header, `let __lp$f; try {…} catch {} if
//   (__lp$f) return …;`), then for moved parameters ` let {0: P0, …} = [__lp$p0, …];` — removed;
// - a concise arrow's body: ` { PROLOGUE return (` after `=>` and `) }` after the expression, told from a block the
//   author wrote by its temporary, `__lp$e` — removed;
// - moved parameters: each replaced by its temporary (on one line; the original is P_k in the moved pattern) or
//   followed by its original text in a comment (over several lines) — put back.
// It is pure and never throws: text it does not recognise comes back unchanged. Most texts are answered without a
// parser (source-text-quick.ts); this file parses the rest with acorn.
import { parseSnippet } from './parse.js';
import { applyChanges, quickSourceText, type Change } from './source-text-quick.js';

type N = any;

const SLOT_OBJECT = /^__lp\$m\d*$/;
const FLAG = /^f\d+$/;
const LINE_BREAKS = /\r\n?|[\n\u2028\u2029]/g;

// How a function's text may be parsed: as an expression (functions, arrows, classes) inside a function (an arrow may
// use `new.target`), else as a method of a class or of an object literal (V8 gives a method's text from its name,
// or `get`/`async`/`*`, without `static`).
const WRAPPERS: readonly (readonly [string, string])[] = [
  ['(function () { return (', '\n) })'],
  ['(class extends Object {', '\n})'],
  ['({', '\n})'],
];

/**
 * The source text the author wrote for an instrumented function, given what V8 returns for it; `text` itself when
 * it holds no slot ABI (or is not a function's text at all). Never throws.
 */
export function originalSourceText(text: string): string {
  if (!text.includes('__lp$')) return text;
  try {
    const quick = quickSourceText(text);
    if (quick !== undefined) return quick;
    for (const [open, close] of WRAPPERS) {
      const ast = parseSnippet(open + text + close);
      if (ast === undefined) continue;
      const changes: Change[] = [];
      collect(ast, text, open.length, changes);
      return changes.length === 0 ? text : applyChanges(text, changes);
    }
  } catch {
    // Anything unexpected leaves the text as V8 has it: wrong text would be worse than instrumented text.
  }
  return text;
}

/** Walks every node; for each instrumented function, adds the changes that undo its edits (offsets into `text`). */
function collect(root: N, text: string, shift: number, changes: Change[]): void {
  const stack: N[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (
      (node.type === 'FunctionExpression' ||
        node.type === 'FunctionDeclaration' ||
        node.type === 'ArrowFunctionExpression') &&
      node.body.type === 'BlockStatement'
    ) {
      undoFunction(node, text, shift, changes);
    }
    for (const key in node) {
      const value = node[key];
      if (Array.isArray(value)) {
        for (const v of value)
          if (v !== null && typeof v === 'object' && typeof v.type === 'string') stack.push(v);
      } else if (
        value !== null &&
        typeof value === 'object' &&
        typeof value.type === 'string' &&
        key !== 'loc'
      ) {
        stack.push(value);
      }
    }
  }
}

const TEMPS = new Set(['__lp$f', '__lp$e']);

/** True when `e` is `__lp$mC.fN`. */
function isFlag(e: N): boolean {
  return (
    e?.type === 'MemberExpression' &&
    !e.computed &&
    e.object.type === 'Identifier' &&
    SLOT_OBJECT.test(e.object.name) &&
    e.property.type === 'Identifier' &&
    FLAG.test(e.property.name)
  );
}

/**
 * The prologue starting at `body[i]`: its temporary (`__lp$f`, or `__lp$e` in a concise arrow) and the index of its
 * last statement; undefined when there is none. Two shapes (emit.ts): `if (__lp$m.fN) { const T = …; if (T) return
 * …; }`, and for a function that may run before its module's header, `let T; try { T = __lp$m.fN && …; } catch {}
 * if (T) return …;`.
 */
function prologueAt(body: N[], i: number): { temp: string; last: number } | undefined {
  const s = body[i];
  if (s?.type === 'IfStatement') {
    if (s.alternate !== null || !isFlag(s.test)) return undefined;
    const first = s.consequent.type === 'BlockStatement' ? s.consequent.body[0] : undefined;
    const id = first?.type === 'VariableDeclaration' ? first.declarations[0]?.id : undefined;
    return id?.type === 'Identifier' && TEMPS.has(id.name) ? { temp: id.name, last: i } : undefined;
  }
  if (s?.type !== 'VariableDeclaration' || s.kind !== 'let' || s.declarations.length !== 1) return undefined;
  const { id, init } = s.declarations[0];
  if (id.type !== 'Identifier' || !TEMPS.has(id.name) || init !== null) return undefined;
  const attempt = body[i + 1];
  const assign = attempt?.type === 'TryStatement' ? attempt.block.body[0]?.expression : undefined;
  if (
    assign?.type !== 'AssignmentExpression' ||
    assign.left.type !== 'Identifier' ||
    assign.left.name !== id.name
  ) {
    return undefined;
  }
  if (assign.right.type !== 'LogicalExpression' || !isFlag(assign.right.left)) return undefined;
  const check = body[i + 2];
  if (check?.type !== 'IfStatement' || check.test.type !== 'Identifier' || check.test.name !== id.name)
    return undefined;
  return { temp: id.name, last: i + 2 };
}

/** The original text of each moved parameter, from `let {0: P0, 1: P1} = [__lp$p0, __lp$p1];`, or undefined. */
function movedPatterns(s: N, text: string, shift: number): string[] | undefined {
  if (s?.type !== 'VariableDeclaration' || s.kind !== 'let' || s.declarations.length !== 1) return undefined;
  const { id, init } = s.declarations[0];
  if (id.type !== 'ObjectPattern' || init?.type !== 'ArrayExpression') return undefined;
  if (id.properties.length !== init.elements.length) return undefined;
  const parts: string[] = [];
  for (let k = 0; k < id.properties.length; k++) {
    const p = id.properties[k];
    const temp = init.elements[k];
    if (p.type !== 'Property' || p.computed || p.key.type !== 'Literal' || p.key.value !== k)
      return undefined;
    if (temp?.type !== 'Identifier' || (temp.name !== `__lp$p${k}` && temp.name !== '__lp$r'))
      return undefined;
    parts.push(text.slice(p.value.start - shift, p.value.end - shift));
  }
  return parts;
}

function undoFunction(fn: N, text: string, shift: number, changes: Change[]): void {
  const body: N[] = fn.body.body;
  let i = 0;
  while (i < body.length && body[i].directive !== undefined) i++;
  const prologue = prologueAt(body, i);
  if (prologue === undefined) return;
  const moved = movedPatterns(body[prologue.last + 1], text, shift);
  const last = moved === undefined ? prologue.last : prologue.last + 1;
  const at = (n: number) => n - shift;
  if (prologue.temp === '__lp$e') {
    // ` { PROLOGUE return (` … `) }`: the whole block is ours, the expression inside the parentheses the author's.
    const ret = body[last + 1];
    const paren = ret?.type === 'ReturnStatement' ? ret.argument : undefined;
    if (fn.type !== 'ArrowFunctionExpression' || paren?.type !== 'ParenthesizedExpression') return;
    if (text[at(fn.body.start) - 1] !== ' ' || body.length !== last + 2) return;
    changes.push({ start: at(fn.body.start) - 1, end: at(paren.start) + 1, text: '' });
    changes.push({ start: at(paren.end) - 1, end: at(fn.body.end), text: '' });
  } else {
    const lead = text[at(body[i].start) - 1];
    if (lead !== ' ' && lead !== ';') return;
    changes.push({ start: at(body[i].start) - 1, end: at(body[last].end), text: '' });
  }
  if (moved !== undefined) undoMovedParams(fn, moved, text, shift, changes);
}

/** Puts each moved parameter's original text back in the parameter list. */
function undoMovedParams(fn: N, moved: string[], text: string, shift: number, changes: Change[]): void {
  const params: N[] = fn.params;
  if (params.length !== moved.length) throw new Error('moved parameters do not match');
  // Over several lines the original stays in place in a comment right after each temporary; its copy in the
  // moved pattern is the same text joined onto one line.
  const comments = params.map((p) => {
    const end = p.end - shift;
    if (!text.startsWith('/*', end)) return undefined;
    const close = text.indexOf('*/', end + 2);
    return close < 0 ? undefined : { end: close + 2, original: text.slice(end + 2, close) };
  });
  const multiLine = comments.every((c, k) => {
    if (c === undefined) return false;
    const joined = c.original.replace(LINE_BREAKS, ' ');
    const part = moved[k] as string;
    return params[k].type === 'RestElement'
      ? joined.startsWith('...') && joined.endsWith(part)
      : joined === part;
  });
  params.forEach((p, k) => {
    const comment = comments[k];
    if (multiLine && comment !== undefined) {
      changes.push({ start: p.start - shift, end: comment.end, text: comment.original });
    } else if (p.type === 'RestElement') {
      changes.push({
        start: p.argument.start - shift,
        end: p.argument.end - shift,
        text: moved[k] as string,
      });
    } else changes.push({ start: p.start - shift, end: p.end - shift, text: moved[k] as string });
  });
}
