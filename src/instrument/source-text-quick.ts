// The common case of source-text.ts without a parser: an instrumented function's text as written when every edit in
// it is a prologue (emit.ts) that a regular expression matches, and every concise arrow's expression can have its
// parentheses counted. No acorn: the loader's toString wrapper calls this first, in the bundle that runs at start,
// and loads the instrumenter only for the texts it leaves (moved parameters, strings in a concise arrow's body).

export interface Change {
  start: number;
  end: number;
  text: string;
}

// The prologue's two forms as text (emit.ts), for the common case that needs no parser. Its call's arguments hold no
// `;` but in a SCOPE accessor's `return n;` and `n = __lp$v;`; an identifier past `[\w$]` falls to the parser.
const CALL = String.raw`\((?:[^;]|(?<=return [\w$]+|= __lp\$v);)*?\)`;
const PROLOGUE_RE = new RegExp(
  String.raw`[ ;](?:if \(__lp\$m(\d*)\.f(\d+)\) \{ const (__lp\$[fe]) = __lp\$m\1\.r\2${CALL}; if \(\3\) return [^;]*; \}` +
    String.raw`|let (__lp\$[fe]); try \{ \4 = __lp\$m(\d*)\.f(\d+) && __lp\$m\5\.r\6${CALL}; \} catch \{\} if \(\4\) return [^;]*;)`,
  'g',
);
const CONCISE_OPEN = ' return (';
const CONCISE_CLOSE = ') }';

/**
 * The text as written without a parser, when every edit in it is a prologue the regular expression matches and every
 * concise arrow's expression holds no string, template, regular expression or comment (whose parentheses would need
 * a tokenizer to count); undefined otherwise (moved parameters, anything unusual), and the parser takes over.
 */
export function quickSourceText(text: string): string | undefined {
  const changes: Change[] = [];
  for (const m of text.matchAll(PROLOGUE_RE)) {
    const start = m.index;
    const end = start + m[0].length;
    if ((m[3] ?? m[4]) === '__lp$f') {
      changes.push({ start, end, text: '' });
      continue;
    }
    // A concise arrow: ` { PROLOGUE return (` … `) }`, the block and the parentheses ours.
    if (text[start] !== ' ' || !text.startsWith(' {', start - 2) || !text.startsWith(CONCISE_OPEN, end))
      return undefined;
    const open = end + CONCISE_OPEN.length;
    let depth = 1;
    let i = open;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 40) depth++;
      else if (c === 41 && --depth === 0) break;
      else if (c === 34 || c === 39 || c === 96 || c === 47) return undefined; // " ' ` /
    }
    if (depth !== 0 || !text.startsWith(CONCISE_CLOSE, i)) return undefined;
    changes.push(
      { start: start - 2, end: open, text: '' },
      { start: i, end: i + CONCISE_CLOSE.length, text: '' },
    );
  }
  if (changes.length === 0) return undefined;
  const result = applyChanges(text, changes);
  return result.includes('__lp$') ? undefined : result;
}

/** `text` with each change made; throws when two changes overlap. */
export function applyChanges(text: string, changes: Change[]): string {
  changes.sort((a, b) => a.start - b.start);
  const out: string[] = [];
  let pos = 0;
  for (const c of changes) {
    if (c.start < pos) throw new Error('overlapping changes');
    out.push(text.slice(pos, c.start), c.text);
    pos = c.end;
  }
  out.push(text.slice(pos));
  return out.join('');
}
