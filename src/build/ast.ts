// Parsing with acorn for the builder: one loose node type, a child walker, line numbers, and position-free fingerprints.
import { parse as acornParse } from 'acorn';
import { createHash } from 'node:crypto';
import { LivepatchError } from '../errors.js';
import type { ModuleFormat } from '../instrument/types.js';

/** An ESTree node as acorn makes it. Loose on purpose: the builder reads many node kinds by field name. */
export interface N {
  type: string;
  start: number;
  end: number;
  [key: string]: any;
}

/** Parses a module's source as the target process would load it. Throws EBUILD naming the file and line. */
export function parseSource(source: string, format: ModuleFormat, file: string): N {
  try {
    return acornParse(source, {
      ecmaVersion: 'latest',
      sourceType: format === 'module' ? 'module' : 'script',
      allowHashBang: true,
      allowReturnOutsideFunction: format === 'commonjs',
      allowAwaitOutsideFunction: format === 'module',
    }) as unknown as N;
  } catch (e) {
    const err = e as Error & { loc?: { line: number; column: number } };
    const where = err.loc ? `${file}:${err.loc.line}` : file;
    throw new LivepatchError('EBUILD', `cannot parse '${where}': ${err.message}`, { file });
  }
}

export function isFunctionNode(n: N): boolean {
  return (
    n.type === 'FunctionDeclaration' ||
    n.type === 'FunctionExpression' ||
    n.type === 'ArrowFunctionExpression'
  );
}

// Fields that hold positions or spelling, not meaning: two sources that differ only there are the same code.
const SKIP = new Set(['type', 'start', 'end', 'loc', 'range', 'raw']);

/** Calls `fn` for each direct child node of `n`, in source order. */
export function forEachChild(n: N, fn: (child: N, key: string) => void): void {
  for (const key in n) {
    if (SKIP.has(key)) continue;
    const v = n[key];
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (const c of v)
        if (c !== null && typeof c === 'object' && typeof c.type === 'string') fn(c as N, key);
    } else if (typeof v.type === 'string') fn(v as N, key);
  }
}

/** Offsets → 1-based line numbers, by binary search over line starts. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(source: string) {
    for (let i = 0; i < source.length; i++) {
      const c = source.charCodeAt(i);
      if (c === 10) this.starts.push(i + 1);
    }
  }
  line(offset: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}

// Functions the instrumenter gave a slot (src/build/symbols.ts marks them). Only these are placeholders in a
// parent's canonical text: a change inside a function that cannot be patched on its own (notrace, refused by the
// instrumenter) is a change of the function around it, or of the module's top level.
const tracked = new WeakSet<N>();

export function markTracked(fn: N): void {
  tracked.add(fn);
}

/**
 * A canonical text of `n` with positions, spelling of literals, comments and whitespace gone, and every nested
 * function with a slot (other than `n` itself) replaced by a placeholder: a change inside a nested function is that
 * function's change, not its parent's (the nested one is patched where it lives).
 */
export function canonical(n: N, isRoot = true, rename?: ReadonlyMap<string, string>): string {
  const out: string[] = [];
  write(n, isRoot, out, rename);
  return out.join('');
}

function write(n: N, isRoot: boolean, out: string[], rename?: ReadonlyMap<string, string>): void {
  if (!isRoot && isFunctionNode(n) && tracked.has(n)) {
    out.push('#fn');
    return;
  }
  if (rename && n.type === 'Identifier' && rename.has(n.name as string)) {
    out.push('(Identifier name=', rename.get(n.name as string) as string, ')');
    return;
  }
  out.push('(', n.type);
  if (n.type === 'Literal') {
    const v = n.regex
      ? `/${n.regex.pattern}/${n.regex.flags}`
      : n.bigint !== undefined
        ? `${n.bigint}n`
        : n.value;
    out.push(' ', typeof v, ':', JSON.stringify(v) ?? String(v), ')');
    return;
  }
  for (const key in n) {
    if (SKIP.has(key)) continue;
    const v = n[key];
    if (v !== null && typeof v === 'object') {
      out.push(' ', key, ':');
      if (Array.isArray(v)) {
        out.push('[');
        for (const c of v) {
          if (c === null) out.push('null');
          else write(c as N, false, out, rename);
          out.push(',');
        }
        out.push(']');
      } else if (typeof v.type === 'string') write(v as N, false, out, rename);
      else if (key === 'value' && n.type === 'TemplateElement') out.push(JSON.stringify(v.cooked ?? v.raw));
      else out.push(JSON.stringify(v));
    } else if (v !== undefined) out.push(' ', key, '=', String(v));
  }
  out.push(')');
}

/** A short digest of `canonical(n)`, to compare functions without keeping their text. */
export function fingerprint(n: N): string {
  return createHash('sha1').update(canonical(n)).digest('base64');
}

/** Like `fingerprint` but of a function's parameters and body only (not its name), to recognise renames. */
export function bodyFingerprint(fn: N): string {
  const h = createHash('sha1');
  for (const p of fn.params as N[]) h.update(canonical(p, false)).update(',');
  h.update(canonical(fn.body as N, false));
  h.update(`${String(fn.async)}${String(fn.generator)}${fn.type === 'ArrowFunctionExpression' ? 'a' : 'f'}`);
  return h.digest('base64');
}
