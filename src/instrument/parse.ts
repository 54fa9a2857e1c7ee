// Parsing with acorn as Node runs the file (ESM as a module, CommonJS inside its wrapper), plus the line table.
import { Parser } from 'acorn';
import { LivepatchError } from '../errors.js';
import type { ModuleFormat } from './types.js';

export interface Parsed {
  ast: any;
  /** Ends of `// livepatch: notrace` comments, ascending. */
  notrace: number[];
  lineOf: (pos: number) => number;
  lineStarts: number[];
}

const NOTRACE = /^[\s*]*livepatch:\s*notrace\s*$/;
const NOTRACE_FILE = /^[\s*]*livepatch:\s*notrace-file\s*$/;

/**
 * acorn without two of its early-error checks, which only ever raise and cost a cold start several % of its parse:
 * the regular-expression validator (it parses every regex literal's pattern a second time, in JavaScript) and the
 * reserved-word check run on every identifier (two regular expressions each). Nothing here reads a pattern or
 * needs those errors: V8 still rejects such a module when it compiles it, with its own message, so a module loads
 * or fails exactly as it would uninstrumented.
 */
const FastParser = (Parser as unknown as { extend(...plugins: unknown[]): typeof Parser }).extend(
  (Base: new (...args: any[]) => object) =>
    class extends Base {
      validateRegExpFlags(): void {}
      validateRegExpPattern(): void {}
      checkUnreserved(): void {}
    },
);

/**
 * Parses a fragment of code (a function's source text in a wrapper) as a script, else as a module (`import.meta`),
 * with parentheses kept as nodes; undefined when it is neither.
 */
export function parseSnippet(code: string): any {
  for (const sourceType of ['script', 'module'] as const) {
    try {
      // A fragment may use what its context declared or allowed: private names, `super`.
      return FastParser.parse(code, {
        ecmaVersion: 'latest',
        sourceType,
        preserveParens: true,
        checkPrivateFields: false,
        allowSuperOutsideMethod: true,
      });
    } catch {
      // try the next way
    }
  }
  return undefined;
}

/** Parses `source`; throws LivepatchError('EINSTRUMENT') naming the file and the position of a syntax error. */
export function parseModule(source: string, format: ModuleFormat, file: string): Parsed {
  const notrace: number[] = [];
  let ast;
  try {
    ast = FastParser.parse(source, {
      ecmaVersion: 'latest',
      sourceType: format === 'module' ? 'module' : 'script',
      allowHashBang: true,
      allowReturnOutsideFunction: format === 'commonjs',
      // Most files hold no notrace comment at all: then acorn need not cut out the text of every comment.
      onComment: source.includes('livepatch:')
        ? (_block, text, _start, end) => {
            if (NOTRACE.test(text)) notrace.push(end);
          }
        : undefined,
    });
  } catch (e) {
    const err = e as SyntaxError & { loc?: { line: number; column: number } };
    throw new LivepatchError('EINSTRUMENT', `cannot instrument '${file}': ${err.message}`, {
      file,
      line: err.loc?.line,
      column: err.loc?.column,
    });
  }
  const lineStarts = computeLineStarts(source);
  return { ast, notrace, lineStarts, lineOf: (pos) => lineIndex(lineStarts, pos) + 1 };
}

/** Offsets where each line starts, with JavaScript's line terminators (\n, \r\n, \r, U+2028, U+2029). */
export function computeLineStarts(source: string): number[] {
  const starts = [0];
  if (!/[\r\u2028\u2029]/.test(source)) {
    // The common case, newlines only: indexOf is much faster than a loop over every character.
    for (let i = source.indexOf('\n'); i >= 0; i = source.indexOf('\n', i + 1)) starts.push(i + 1);
    return starts;
  }
  const n = source.length;
  for (let i = 0; i < n; i++) {
    const c = source.charCodeAt(i);
    if (c > 13 && c < 0x2028) continue;
    if (c === 10 || c === 0x2028 || c === 0x2029) starts.push(i + 1);
    else if (c === 13) {
      if (source.charCodeAt(i + 1) === 10) i++;
      starts.push(i + 1);
    }
  }
  return starts;
}

/** The 0-based line holding `pos`. */
export function lineIndex(starts: number[], pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] as number) <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * True when the file opts out entirely: a `// livepatch: notrace-file` (or block) comment among the comments
 * before its first token (after a hashbang).
 */
export function isNotraceFile(source: string): boolean {
  let i = source.startsWith('#!') ? source.indexOf('\n') + 1 || source.length : 0;
  const n = source.length;
  for (;;) {
    while (i < n && /\s/.test(source[i] as string)) i++;
    if (source.startsWith('//', i)) {
      let end = source.indexOf('\n', i);
      if (end < 0) end = n;
      if (NOTRACE_FILE.test(source.slice(i + 2, end))) return true;
      i = end;
    } else if (source.startsWith('/*', i)) {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) return false;
      if (NOTRACE_FILE.test(source.slice(i + 2, end))) return true;
      i = end + 2;
    } else return false;
  }
}
