// How new code moved into a patch still reaches what it used in its module: each identifier that leaves the moved
// code is rewritten to the running module's bindings (ctx.bindings), an enclosing function's scope (ctx.scope()),
// or a name the patch defines itself (a new helper, a moved constant) — or refused when none of them can serve.
import type { N } from './ast.js';
import { loadTimeFunctions } from './compare.js';
import { refusal, type ModuleDiff, type Refusal } from './module-diff.js';
import { COMMONJS_NAMES, type Scope } from './scope.js';
import { isDataLike } from './toplevel.js';
import { isGlobalAlias, wrapperConstant } from './wrapper.js';

/** Reserved names the patch uses; `__lp$` is reserved by the ABI, so user code cannot clash with them. */
export const CTX = '__lp$ctx';
export const BINDINGS = '__lp$b';
export const SCOPE = '__lp$s';

export interface Edit {
  start: number;
  end: number;
  text: string;
}

/** The source of [start, end) with the edits that fall inside it applied. */
export function applyEdits(source: string, start: number, end: number, edits: Edit[]): string {
  const inside = edits
    .filter((e) => e.start >= start && e.end <= end)
    .sort((a, b) => a.start - b.start || a.end - b.end);
  let out = '';
  let at = start;
  for (const e of inside) {
    if (e.start < at) continue; // overlapping edits cannot happen for distinct identifiers; keep the first
    out += source.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + source.slice(at, end);
}

/** What rewiring a range found: its edits, and what the rewritten code needs around it. */
export interface Rewired {
  edits: Edit[];
  /** Some identifier now reads `__lp$s`: the replacement must take ctx.scope(). */
  usesScope: boolean;
  /** Shared names (new helpers, moved constants) the rewritten code reads. */
  needs: Set<string>;
  /** Names left as they are (globals, itself, helpers carried along): the replacement must not shadow them. */
  kept: Set<string>;
  /** Offsets of the identifiers rewritten to `__lp$s`. */
  scopeAt: number[];
  /** New functions (or wrapper constants) declared beside the code that must come along inside it. */
  nested: Set<N>;
}

/** Rewires ranges of one module's new version; one per planned module, reporting its refusals into `refusals`. */
export class Rewirer {
  private readonly refs: [N, Scope | null][];
  private readonly refStarts: number[];
  /** Declaring identifier → new nested function declaration (not in the running version). */
  private readonly newNested = new Map<N, N>();
  /** Names bound at the running module's top level (with CommonJS's own): what `__lp$b` has. */
  readonly oldNames: Set<string>;
  /** New name → running name, for functions renamed with the same body. */
  private readonly renames = new Map<string, string>();
  /** Module-level names the patch must define itself, each with the reference that first wanted it. */
  readonly sharedWanted = new Map<string, N>();
  private once: Set<N> | undefined;
  /** Enclosing aliases of standard globals that patched code reads as the globals. */
  readonly globalNotes = new Set<string>();

  constructor(
    private readonly d: ModuleDiff,
    private readonly refusals: Refusal[],
  ) {
    this.refs = [...d.scopes.refs].sort((a, b) => a[0].start - b[0].start);
    this.refStarts = this.refs.map((r) => r[0].start);
    this.oldNames = new Set(d.old.top.bindings.keys());
    if (d.old.format === 'commonjs') for (const n of COMMONJS_NAMES) this.oldNames.add(n);
    for (const f of d.funcs)
      if (f.change === 'new' && f.new && f.new.sym.parent >= 0 && f.new.node.type === 'FunctionDeclaration')
        this.newNested.set(f.new.node.id as N, f.new.node);
    for (const f of d.funcs)
      if (f.change === 'renamed' && f.old?.node.id && f.new?.node.id)
        this.renames.set(f.new.node.id.name, f.old.node.id.name);
    for (const [now, was] of d.renamed) this.renames.set(now, was);
  }

  private loadTime(): Set<N> {
    return (this.once ??= loadTimeFunctions(this.d.new.ast));
  }

  private refuse(node: N | number, construct: string, remedy: string): void {
    this.refusals.push(refusal(this.d.new, node, construct, remedy));
  }

  /** The references (identifier, declaring scope or null for a global) that start in [start, end), in order. */
  refsIn(start: number, end: number): [N, Scope | null][] {
    let lo = 0;
    let hi = this.refStarts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.refStarts[mid] ?? 0) < start) lo = mid + 1;
      else hi = mid;
    }
    const out: [N, Scope | null][] = [];
    for (let i = lo; i < this.refs.length && (this.refStarts[i] ?? 0) < end; i++)
      out.push(this.refs[i] as [N, Scope | null]);
    return out;
  }

  /**
   * Rewrites the identifiers of [start, end) that leave that range: module bindings → `__lp$b.x`, an enclosing
   * function's variables → `__lp$s.x`, new helpers and moved constants → the shared scope. Returns the edits,
   * or null after recording a refusal.
   */
  rewire(
    who: string,
    start: number,
    end: number,
    enclosing: string[] | null,
    selfId: N | null,
  ): Rewired | null {
    const edits: Edit[] = [];
    const nested = new Set<N>();
    const needs = new Set<string>();
    const kept = new Set<string>();
    const scopeAt: number[] = [];
    let usesScope = false;
    let ok = true;
    const uncaptured = new Set<string>();
    let firstUncaptured: N | null = null;
    const refused = new Set<string>();
    const moduleScope = this.d.scopes.module;
    for (const [id, scope] of this.refsIn(start, end)) {
      const name = id.name as string;
      if (scope === null) {
        kept.add(name);
        continue;
      }
      if (scope.node.start >= start && scope.node.end <= end) continue; // declared inside: unchanged
      if (selfId && scope.names.get(name) === selfId) {
        kept.add(name);
        continue; // a call to itself stays as is: the replacement carries the same name
      }
      let target: string | null = null;
      let s: Scope | null = scope;
      if (s.kind === 'class') {
        const b = this.d.new.top.bindings.get(name);
        if (b && b.init === s.node) s = moduleScope;
      }
      if (s === moduleScope) {
        if (refused.has(name)) continue;
        target = this.moduleRef(who, id, name);
        if (target === null) refused.add(name);
        if (target === null) {
          ok = false;
          continue;
        }
        if (target === name) {
          needs.add(name);
          continue;
        }
      } else {
        let fnScope: Scope | null = s;
        while (fnScope && fnScope.kind !== 'function' && fnScope.kind !== 'module') fnScope = fnScope.parent;
        const running = this.renames.get(name) ?? name;
        if (!fnScope || fnScope.kind === 'module' || enclosing === null) {
          this.refuse(
            id,
            `patched '${who}' reads '${name}', declared in a block at module level`,
            'move the declaration to the top level of the module, or keep the code that reads it unchanged',
          );
          ok = false;
          continue;
        }
        const helper = this.newNested.get(s.names.get(name) as N);
        if (helper !== undefined && !enclosing.includes(running)) {
          // A new function beside the patched one: it comes along inside the replacement.
          nested.add(helper);
          kept.add(name);
          continue;
        }
        if (!enclosing.includes(running)) {
          const constant = wrapperConstant(this.d, this.loadTime(), fnScope, name);
          if (constant !== undefined) {
            // Plain data of a function that ran once: the patch makes the same value itself.
            nested.add(constant);
            kept.add(name);
            continue;
          }
          if (isGlobalAlias(this.d, fnScope, name)) {
            kept.add(name);
            this.globalNotes.add(name);
            continue;
          }
          if (uncaptured.size === 0) firstUncaptured = id;
          uncaptured.add(name);
          ok = false;
          continue;
        }
        usesScope = true;
        scopeAt.push(id.start);
        target = `${SCOPE}.${running}`;
      }
      const text = this.d.scopes.shorthand.has(id)
        ? `${name}: ${target}`
        : this.d.scopes.callees.has(id)
          ? `(0, ${target})`
          : target;
      edits.push({ start: id.start, end: id.end, text });
    }
    if (firstUncaptured !== null) {
      const names = [...uncaptured].map((n) => `'${n}'`).join(', ');
      this.refuse(
        firstUncaptured,
        `patched '${who}' reads ${names} of its enclosing function, which the running code does not capture`,
        'the running closure has no access to them: patch the enclosing function instead (closures it already made keep the old code), or pass the values in',
      );
    }
    return ok ? { edits, usesScope, needs, kept, scopeAt, nested } : null;
  }

  /** How patched code reaches module-level `name`: a member of the bindings, a shared name, or null (refused). */
  private moduleRef(who: string, id: N, name: string): string | null {
    if (this.d.movedConstants.has(name)) {
      this.sharedWanted.set(name, id);
      return name;
    }
    const renamed = this.renames.get(name);
    if (renamed !== undefined && this.oldNames.has(renamed)) return `${BINDINGS}.${renamed}`;
    if (this.oldNames.has(name)) return `${BINDINGS}.${name}`;
    const b = this.d.new.top.bindings.get(name);
    if (
      b &&
      !b.group &&
      (b.isFunction || b.isClass || (b.kind === 'const' && isDataLike(b.init)) || this.d.settled.has(name))
    ) {
      this.sharedWanted.set(name, id);
      return name;
    }
    this.refuse(
      id,
      b
        ? `patched '${who}' uses new module-level '${b.kind} ${name}'`
        : `patched '${who}' uses unknown '${name}'`,
      'new module-level state cannot be added to a running module: keep it in a shadow variable, or create it in a postPatch callback on ctx.bindings of an existing binding',
    );
    return null;
  }
}
