// create-diff-object for JavaScript: matches one module's old and new versions function by function and
// classifies every difference — unchanged, changed, new, removed, renamed — or refuses it with a remedy.
import type { ModuleFormat, SymbolTable } from '../instrument/types.js';
import {
  bodyFingerprint,
  canonical,
  fingerprint,
  forEachChild,
  isFunctionNode,
  LineIndex,
  type N,
} from './ast.js';
import { analyzeScopes, type ScopeInfo } from './scope.js';
import { type LocatedFunc } from './symbols.js';
import { onlyNewDeclarations } from './wrapper.js';
import { exportTarget, isDataLike, type Binding, type TopLevel } from './toplevel.js';

/** One version of one module, parsed and named. */
export interface ModuleSide {
  /** Absolute path in its tree. */
  file: string;
  /** Path inside the tree, with forward slashes: what messages show. */
  rel: string;
  id: string;
  hash: string;
  format: ModuleFormat;
  source: string;
  ast: N;
  lines: LineIndex;
  symbols: SymbolTable;
  funcs: LocatedFunc[];
  top: TopLevel;
}

export type Change = 'unchanged' | 'changed' | 'new' | 'removed' | 'renamed';

export interface FuncDiff {
  /** The running (old) name for changed/unchanged/removed/renamed; the new name for new functions. */
  name: string;
  sympos: number;
  change: Change;
  /** Line in the new version (old version for removed). */
  line: number;
  old?: LocatedFunc;
  new?: LocatedFunc;
  /** Why an unchanged-looking function is patched anyway, e.g. it reads a changed constant. */
  why?: string;
  /** For renamed: the new name. */
  newName?: string;
  /** Changed code in a function that runs once while the module loads: never patched. */
  loadTime?: boolean;
}

export interface Refusal {
  module: string;
  /** `path/in/tree.js:LINE`. */
  where: string;
  /** The construct, in a few words with the name in quotes. */
  construct: string;
  /** What to do instead. */
  remedy: string;
}

export interface ModuleDiff {
  id: string;
  rel: string;
  old: ModuleSide;
  new: ModuleSide;
  funcs: FuncDiff[];
  /** Module-level functions renamed with a changed body: new name → running name (see renamedFunctions). */
  renamed: Map<string, string>;
  /** Changed module-level constants whose new value moves into the patch. */
  movedConstants: Set<string>;
  /** New module-level `var`/`let`s of plain data that nothing assigns: carried into the patch like constants. */
  settled: Set<string>;
  /** The old version's scopes, computed only when a `var`/`let` must be checked for writes. */
  oldScopes?: ScopeInfo;
  refusals: Refusal[];
  notes: string[];
  scopes: ScopeInfo;
}

export function refusal(side: ModuleSide, node: N | number, construct: string, remedy: string): Refusal {
  const line = typeof node === 'number' ? node : side.lines.line(node.start);
  return { module: side.id, where: `${side.rel}:${line}`, construct, remedy };
}

/** One line of a statement's source, shortened, for messages. */
export function excerpt(side: ModuleSide, node: N): string {
  const text = side.source.slice(node.start, node.end).replace(/\s+/g, ' ').trim();
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const fpCache = new WeakMap<N, string>();
function fp(f: LocatedFunc): string {
  let v = fpCache.get(f.node);
  if (v === undefined) {
    v = fingerprint(f.node);
    fpCache.set(f.node, v);
  }
  return v;
}

function parentName(name: string): string {
  const i = name.lastIndexOf('>');
  return i < 0 ? '' : name.slice(0, i);
}

/**
 * Module-level functions renamed in a change that also changed their bodies (path-to-regexp 0.1.10's
 * `pathtoRegexp` → `pathToRegexp`): new name → running name. A pair counts only when the old name is gone, the new
 * one is new, the parameters are the same, and a module-level statement that differs between the versions (the
 * `module.exports = …` that hands the function out) becomes identical once the new name reads as the old: then
 * callers that reached the running function reach the new one the same way, and the running slot is patched.
 */
export function renamedFunctions(oldSide: ModuleSide, newSide: ModuleSide): Map<string, string> {
  const renames = new Map<string, string>();
  const params = (f: N) => (f.params as N[]).map((p) => canonical(p, false)).join(',');
  const gone = [...oldSide.top.bindings.values()].filter(
    (b) => b.kind === 'function' && !newSide.top.bindings.has(b.name),
  );
  const fresh = [...newSide.top.bindings.values()].filter(
    (b) => b.kind === 'function' && !oldSide.top.bindings.has(b.name),
  );
  if (gone.length === 0 || fresh.length === 0) return renames;
  const oldOthers = new Set(oldSide.top.others.map((o) => o.canon));
  const differing = newSide.top.others.filter((n) => !oldOthers.has(n.canon));
  for (const nb of fresh) {
    const ob = gone.find(
      (o) =>
        params(o.node) === params(nb.node) &&
        bodyFingerprint(o.node) !== bodyFingerprint(nb.node) &&
        ![...renames.values()].includes(o.name),
    );
    if (!ob) continue;
    const one = new Map([[nb.name, ob.name]]);
    if (differing.some((n) => oldOthers.has(canonical(n.node, false, one)))) renames.set(nb.name, ob.name);
  }
  return renames;
}

/** A new function's symbol name as the running module would spell it, given renamed module-level functions. */
function runningName(name: string, renames: ReadonlyMap<string, string>): string {
  const i = name.indexOf('>');
  const head = i < 0 ? name : name.slice(0, i);
  const was = renames.get(head);
  return was === undefined ? name : was + (i < 0 ? '' : name.slice(i));
}

/** Pairs old and new functions by symbol name (and by content among duplicates), then spots renames. */
export function matchFuncs(
  oldSide: ModuleSide,
  newSide: ModuleSide,
  renames: ReadonlyMap<string, string> = new Map(),
): FuncDiff[] {
  const groups = new Map<string, LocatedFunc[]>();
  for (const f of oldSide.funcs) {
    const g = groups.get(f.sym.name);
    if (g) g.push(f);
    else groups.set(f.sym.name, [f]);
  }
  const out: FuncDiff[] = [];
  const added: LocatedFunc[] = [];
  const newGroups = new Map<string, LocatedFunc[]>();
  for (const f of newSide.funcs) {
    const key = runningName(f.sym.name, renames);
    const g = newGroups.get(key);
    if (g) g.push(f);
    else newGroups.set(key, [f]);
  }
  for (const [name, news] of newGroups) {
    const olds = groups.get(name) ?? [];
    groups.delete(name);
    const pairs = new Map<LocatedFunc, LocatedFunc>();
    if (olds.length === news.length) news.forEach((n, i) => pairs.set(n, olds[i] as LocatedFunc));
    else {
      // Duplicated names with some added or removed: identical bodies pair first, the rest in source order.
      const free = [...olds];
      for (const n of news) {
        const i = free.findIndex((o) => fp(o) === fp(n));
        if (i >= 0) pairs.set(n, free.splice(i, 1)[0] as LocatedFunc);
      }
      for (const n of news) if (!pairs.has(n) && free.length > 0) pairs.set(n, free.shift() as LocatedFunc);
      for (const o of free) groups.set(name, [...(groups.get(name) ?? []), o]);
    }
    for (const n of news) {
      const o = pairs.get(n);
      const line = newSide.lines.line(n.node.start);
      if (!o) added.push(n);
      else
        out.push({
          name: o.sym.name,
          sympos: o.sym.sympos,
          change: fp(o) === fp(n) ? 'unchanged' : 'changed',
          line,
          old: o,
          new: n,
          ...(n.sym.name !== o.sym.name ? { newName: n.sym.name } : {}),
        });
    }
  }
  const removed = [...groups.values()].flat();
  for (const n of added) {
    const line = newSide.lines.line(n.node.start);
    const bfp = bodyFingerprint(n.node);
    const i = removed.findIndex(
      (o) => parentName(o.sym.name) === parentName(n.sym.name) && bodyFingerprint(o.node) === bfp,
    );
    if (i >= 0) {
      const o = removed.splice(i, 1)[0] as LocatedFunc;
      out.push({
        name: o.sym.name,
        sympos: o.sym.sympos,
        change: 'renamed',
        line,
        old: o,
        new: n,
        newName: n.sym.name,
      });
    } else out.push({ name: n.sym.name, sympos: n.sym.sympos, change: 'new', line, new: n });
  }
  for (const o of removed)
    out.push({
      name: o.sym.name,
      sympos: o.sym.sympos,
      change: 'removed',
      line: oldSide.lines.line(o.node.start),
      old: o,
    });
  return out.sort((a, b) => a.line - b.line);
}

/** Compares two versions of a module whose bytes differ. Pure. */
export interface CompareOptions {
  /** Accept (with a note) changes in code that ran once at load, instead of refusing them. */
  ignoreLoadTime?: boolean;
}

export function compareModule(
  oldSide: ModuleSide,
  newSide: ModuleSide,
  opts: CompareOptions = {},
): ModuleDiff {
  const renamed = renamedFunctions(oldSide, newSide);
  const d: ModuleDiff = {
    id: newSide.id,
    rel: newSide.rel,
    old: oldSide,
    new: newSide,
    funcs: matchFuncs(oldSide, newSide, renamed),
    renamed,
    movedConstants: new Set(),
    settled: new Set(),
    refusals: [],
    notes: [],
    scopes: analyzeScopes(newSide.ast, newSide.format),
  };
  compareStatements(d, opts.ignoreLoadTime === true);
  compareBindings(d, opts.ignoreLoadTime === true);
  compareExports(d);
  pullConstantReaders(d);
  checkLoadTime(d, opts.ignoreLoadTime === true);
  return d;
}

/**
 * Functions that run exactly once, while the module loads: immediately invoked function expressions at module
 * level (`(function () {…})()`, `(() => {…})()`, `!function () {…}()`, `(function () {…}).call(this)`) and
 * those nested the same way at the top of another one. Bundles wrap a whole library in one.
 */
export function loadTimeFunctions(program: N): Set<N> {
  const once = new Set<N>();
  const walk = (n: N): void => {
    if (isFunctionNode(n)) return; // not called at load (as far as can be told)
    if (n.type === 'CallExpression') {
      let callee = n.callee as N;
      if (
        callee.type === 'MemberExpression' &&
        !callee.computed &&
        ['call', 'apply'].includes(callee.property.name)
      )
        callee = callee.object;
      if (isFunctionNode(callee)) {
        once.add(callee);
        for (const p of callee.params as N[]) walk(p);
        if (callee.body.type === 'BlockStatement') for (const st of callee.body.body as N[]) walk(st);
        else walk(callee.body);
        for (const a of n.arguments as N[]) walk(a);
        return;
      }
    }
    forEachChild(n, walk);
  };
  walk(program);
  return once;
}

/** The line of the first statement (or the parameters) that differs between two versions of a function. */
function firstDifference(d: ModuleDiff, o: N, n: N): number {
  const params = (f: N) => (f.params as N[]).map((p) => canonical(p, false)).join(',');
  if (params(o) !== params(n)) return d.new.lines.line(n.start);
  const body = (f: N): N[] => (f.body.type === 'BlockStatement' ? (f.body.body as N[]) : [f.body as N]);
  const ob = body(o);
  const nb = body(n);
  for (let i = 0; i < nb.length; i++) {
    const a = ob[i];
    const b = nb[i] as N;
    if (!a || canonical(a, false) !== canonical(b, false)) return d.new.lines.line(b.start);
  }
  return d.new.lines.line(n.body.end);
}

// kpatch refuses changed __init code: it already ran. Load-time code here is the same: the target will never run
// it again, so a fix there would silently do nothing.
function checkLoadTime(d: ModuleDiff, ignore: boolean): void {
  const changed = d.funcs.filter((f) => f.change === 'changed' && f.new && f.old);
  if (changed.length === 0) return;
  const once = loadTimeFunctions(d.new.ast);
  for (const f of changed) {
    if (!once.has((f.new as { node: N }).node)) continue;
    f.loadTime = true;
    if (onlyNewDeclarations(d, (f.old as { node: N }).node, (f.new as { node: N }).node)) {
      f.why = 'runs once at load: only new declarations, defined by the patch where patched code reads them';
      continue;
    }
    f.why = 'runs once at load: not patched';
    const line = firstDifference(d, (f.old as { node: N }).node, (f.new as { node: N }).node);
    if (ignore)
      d.notes.push(
        `'${f.name}' runs once at load; its change at ${d.rel}:${line} is not applied to the target`,
      );
    else
      d.refusals.push(
        refusal(
          d.new,
          line,
          `changed code in '${f.name}', which runs once when the module loads`,
          'the target will not run it again: redo its effect in a postPatch callback, or restart; if the change does not matter to a running process (a version string, a renamed parameter), accept that with --ignore-load-time',
        ),
      );
  }
}

function compareStatements(d: ModuleDiff, ignore: boolean): void {
  const pool = new Map<string, N[]>();
  for (const o of d.old.top.others) pool.set(o.canon, [...(pool.get(o.canon) ?? []), o.node]);
  const added: { node: N; exports: boolean }[] = [];
  for (const n of d.new.top.others) {
    const canon = d.renamed.size > 0 ? canonical(n.node, false, d.renamed) : n.canon;
    const list = pool.get(canon);
    if (list && list.length > 0) list.shift();
    else added.push(n);
  }
  const removed = [...pool.values()].flat();
  const oldTargets = new Set(d.old.top.others.map((o) => exportTarget(o.node)));
  for (const n of added) {
    const target = exportTarget(n.node);
    if (target !== null && !oldTargets.has(target)) {
      // `exports.x = …` for a new x: the running module's exports object lacks it, and the new code of other
      // modules that calls it would fail (ejs 3.1.7's 'createNullProtoObjWherePossible').
      d.refusals.push(
        refusal(
          d.new,
          n.node,
          `changed exports: new export '${target}'`,
          `the running module's exports object has no '${target}', and patched code that uses it would fail: put the new code behind an existing export, add the property from a prePatch callback (ctx.bindings.module.exports.${target} = …) in a hand-made patch, or restart; --exclude '${d.rel}' is only right when no patched code uses it`,
        ),
      );
      continue;
    }
    const primitive = ignore && isPrimitiveExport(n.node) ? removed.findIndex(isPrimitiveExport) : -1;
    if (primitive >= 0) {
      // tough-cookie 4.1.3's `module.exports = '4.1.3'`: importers already hold the old string, and no code of
      // the module reads it; with --ignore-load-time that is a note, not a refusal.
      removed.splice(primitive, 1);
      d.notes.push(
        `'${excerpt(d.new, n.node)}' (${d.rel}:${d.new.lines.line(n.node.start)}) is not applied: the running module keeps exporting its old value`,
      );
      continue;
    }
    const was = removed.shift();
    const what = n.exports
      ? 'changed exports'
      : was
        ? 'changed top-level statement'
        : 'new top-level statement';
    d.refusals.push(
      refusal(
        d.new,
        n.node,
        `${what} '${excerpt(d.new, n.node)}'`,
        n.exports
          ? 'the running module has already handed out its exports; keep them as they are and change the functions behind them'
          : 'module-level code already ran in the target; do the new work in a postPatch callback (ctx.bindings gives the module state), or restart',
      ),
    );
  }
  for (const o of removed)
    d.refusals.push(
      refusal(
        d.old,
        o,
        `removed top-level statement '${excerpt(d.old, o)}'`,
        'its effect already happened in the target; undo it in a postPatch callback, or restart',
      ),
    );
}

function compareBindings(d: ModuleDiff, ignore: boolean): void {
  const oldB = d.old.top.bindings;
  const newB = d.new.top.bindings;
  for (const [name, nb] of newB) {
    const ob = oldB.get(name);
    if (!ob) {
      if (isSettled(d, nb, 'new')) d.settled.add(name);
      else if (!nb.isFunction && !nb.isClass && !isDataLike(nb.init) && nb.kind !== 'import')
        d.refusals.push(
          refusal(
            d.new,
            nb.node,
            `new module-level '${nb.kind} ${name}' with a side effect at load`,
            'the target will not run module-level code again; create it in a postPatch callback, or restart',
          ),
        );
      continue;
    }
    if (nb.kind === 'import' || ob.kind === 'import') {
      if (nb.kind !== ob.kind || nb.canon !== ob.canon)
        d.refusals.push(
          refusal(
            d.new,
            nb.statement,
            `changed import of '${name}'`,
            'a running module cannot change its imports; restart',
          ),
        );
      continue;
    }
    if (nb.isClass && ob.isClass) {
      compareClass(d, name, ob, nb);
      continue;
    }
    // Function bodies with slots are compared as functions (their canonical text is a placeholder here).
    if (nb.canon === ob.canon && nb.kind === ob.kind) continue;
    if (nb.isFunction && ob.isFunction && nb.kind === ob.kind) {
      const why = d.old.symbols.unpatchable.find((u) => u.name === name)?.reason ?? 'not instrumented';
      d.refusals.push(
        refusal(
          d.new,
          nb.node,
          `changed function '${name}', which cannot be patched (${why})`,
          'make it patchable (remove its notrace mark) in the running version first, or patch the functions that call it',
        ),
      );
      continue;
    }
    if (nb.kind === 'const' && ob.kind === 'const' && !nb.group && !nb.isFunction && isDataLike(nb.init)) {
      d.movedConstants.add(name);
      continue;
    }
    // A `var` or `let` that nothing ever assigns, in either version, is a constant in all but name: its new value
    // moves into the patch the same way (cookie 0.7.0's regular expressions, ejs 3.1.7's '_JS_IDENTIFIER').
    if (isSettled(d, ob, 'old') && isSettled(d, nb, 'new')) {
      d.movedConstants.add(name);
      continue;
    }
    const what =
      nb.kind !== ob.kind
        ? `module-level '${name}' changed from '${ob.kind}' to '${nb.kind}'`
        : `changed initial value of module-level '${nb.kind} ${name}'`;
    // Not a destructured binding: semver 7.5.2's `const { safeRe: re } = require(…)` is the fix itself, read by
    // unchanged code.
    if (ignore && !nb.group && !readByChangedCode(d, name)) {
      // flat 5.0.1's `var isBuffer = require('is-buffer')` → `function isBuffer`: nothing the fix changes reads
      // it, so the running value serves the unchanged code that does, as it did.
      d.notes.push(
        `${what} (${d.rel}:${d.new.lines.line(nb.node.start)}) is not applied: the target keeps its running value, and no changed code reads it`,
      );
      continue;
    }
    d.refusals.push(
      refusal(
        d.new,
        nb.node,
        what,
        `the target already holds its value; keep the declaration as it was and set the new value in a postPatch callback (ctx.bindings.${name} = …), or keep per-object data in a shadow variable`,
      ),
    );
  }
}

/**
 * True when module-level `b` is a `var`/`let` (or `const`) of plain data that no code of that version ever assigns
 * (`=`, `+=`, `++`, destructuring, `for (x of …)`) and that is not an ES export (importers see a live binding of
 * the running module, which keeps the old value). Such a binding holds its initial value forever, so defining it
 * again inside the patch with the new value is what the new version would have: the readers are patched and a
 * read at module level (`module.exports = { re }`) is refused by pullConstantReaders, as for a moved `const`.
 */
function isSettled(d: ModuleDiff, b: Binding, version: 'old' | 'new'): boolean {
  if (b.kind !== 'var' && b.kind !== 'let' && b.kind !== 'const') return false;
  if (b.group || b.isFunction || b.isClass || b.exported || b.init === null || !isDataLike(b.init))
    return false;
  const side = version === 'new' ? d.new : d.old;
  // Only one declarator of this name: `var x = 1; … var x = 2;` is a write.
  let declarations = 0;
  for (const st of side.ast.body as N[]) {
    const decl = st.type === 'ExportNamedDeclaration' ? (st.declaration as N | null) : st;
    if (decl?.type === 'VariableDeclaration')
      for (const v of decl.declarations as N[])
        if (v.id.type === 'Identifier' && v.id.name === b.name) declarations++;
  }
  if (declarations !== 1) return false;
  const scopes = version === 'new' ? d.scopes : (d.oldScopes ??= analyzeScopes(d.old.ast, d.old.format));
  for (const id of scopes.writes)
    if (id.name === b.name && scopes.refs.get(id) === scopes.module) return false;
  // A direct eval could assign it where no analysis can see.
  let evals = directEval.get(side.ast);
  if (evals === undefined) directEval.set(side.ast, (evals = hasDirectEval(side.ast)));
  return !evals;
}

const directEval = new WeakMap<N, boolean>();

function hasDirectEval(n: N): boolean {
  if (n.type === 'CallExpression' && n.callee.type === 'Identifier' && n.callee.name === 'eval') return true;
  let found = false;
  forEachChild(n, (c) => {
    if (!found && hasDirectEval(c)) found = true;
  });
  return found;
}

/** `module.exports = <a string, number or boolean>`. */
function isPrimitiveExport(st: N): boolean {
  if (st.type !== 'ExpressionStatement' || st.expression.type !== 'AssignmentExpression') return false;
  const { left, right } = st.expression as { left: N; right: N };
  return (
    left.type === 'MemberExpression' &&
    !left.computed &&
    left.object.type === 'Identifier' &&
    left.object.name === 'module' &&
    left.property.name === 'exports' &&
    right.type === 'Literal' &&
    !right.regex &&
    right.value !== null
  );
}

/** True when a function classified as changed (new code) reads module-level `name`. */
function readByChangedCode(d: ModuleDiff, name: string): boolean {
  const changed = new Set(d.funcs.filter((f) => f.change === 'changed' && f.new).map((f) => f.new?.node));
  for (const [id, scope] of d.scopes.refs) {
    if (scope !== d.scopes.module || id.name !== name) continue;
    const fn = innermostFunc(d.new.funcs, id.start);
    // A read at module level in the new version is load-time code that used the new value: not ignorable.
    if (!fn || changed.has(fn.node)) return true;
  }
  return false;
}

function memberKey(m: N): string {
  const k = m.key as N | undefined;
  const key = !k
    ? ''
    : m.computed
      ? `[${canonical(k, false)}]`
      : k.type === 'PrivateIdentifier'
        ? `#${String(k.name)}`
        : String(k.name ?? k.value);
  return `${m.static ? 'static ' : ''}${m.type === 'PropertyDefinition' ? 'field' : m.type === 'StaticBlock' ? 'static-block' : String(m.kind)} ${key}`;
}

function classShape(cls: N): Map<string, { node: N; canon: string }> {
  const shape = new Map<string, { node: N; canon: string }>();
  let blocks = 0;
  for (const m of cls.body.body as N[]) {
    let key = memberKey(m);
    if (m.type === 'StaticBlock') key += String(blocks++);
    const canon = m.type === 'MethodDefinition' ? '' : canonical(m, false);
    shape.set(key, { node: m, canon });
  }
  return shape;
}

function compareClass(d: ModuleDiff, name: string, ob: Binding, nb: Binding): void {
  const oc = ob.init as N;
  const nc = nb.init as N;
  const oh = oc.superClass ? canonical(oc.superClass, false) : '';
  const nh = nc.superClass ? canonical(nc.superClass, false) : '';
  if (oh !== nh)
    d.refusals.push(
      refusal(
        d.new,
        nc,
        `changed base class of '${name}'`,
        'existing instances keep their prototype chain; restart',
      ),
    );
  const os = classShape(oc);
  const ns = classShape(nc);
  for (const [key, m] of ns) {
    const o = os.get(key);
    const label = `'${name}' member '${key}'`;
    if (!o) {
      const isMethod = m.node.type === 'MethodDefinition';
      d.refusals.push(
        refusal(
          d.new,
          m.node,
          `changed class shape: new ${label}`,
          isMethod
            ? `add it from a postPatch callback (Object.defineProperty(ctx.bindings.${name}.prototype, …)) and remove it in postUnpatch, or call a new top-level helper function instead`
            : 'existing instances do not have it: keep per-instance data in a shadow variable',
        ),
      );
    } else if (o.canon !== m.canon)
      d.refusals.push(
        refusal(
          d.new,
          m.node,
          `changed class shape: changed ${label}`,
          'field initialisers already ran for existing instances: keep the field and fix its value in the methods that use it, or use a shadow variable',
        ),
      );
  }
  for (const [key, m] of os)
    if (!ns.has(key))
      d.refusals.push(
        refusal(
          d.old,
          m.node,
          `changed class shape: removed '${name}' member '${key}'`,
          'existing callers may still use it: keep it (it may forward to the new code)',
        ),
      );
}

function compareExports(d: ModuleDiff): void {
  for (const [e, node] of d.new.top.exports)
    if (!d.old.top.exports.has(e))
      d.refusals.push(
        refusal(
          d.new,
          node,
          `changed exports: new export '${e}'`,
          'importers of the running module already linked its exports; keep the export list and put new code behind existing exports',
        ),
      );
  for (const [e, node] of d.old.top.exports)
    if (!d.new.top.exports.has(e))
      d.refusals.push(
        refusal(
          d.old,
          node,
          `changed exports: removed export '${e}'`,
          'keep the export (it may forward to new code)',
        ),
      );
  for (const imp of d.new.top.imports)
    if (
      !d.old.top.imports.some((o) => o.canon === imp.canon) &&
      !d.refusals.some((r) => r.construct.includes('import'))
    )
      d.refusals.push(
        refusal(
          d.new,
          imp.node,
          `new import of '${imp.source}'`,
          "a running module cannot gain imports; use import('node:…') inside the patched function for a builtin, or restart",
        ),
      );
}

/** The innermost function (by the new version's symbols) containing `offset`, or undefined at module level. */
export function innermostFunc(funcs: LocatedFunc[], offset: number): LocatedFunc | undefined {
  let best: LocatedFunc | undefined;
  for (const f of funcs)
    if (f.node.start <= offset && offset < f.node.end && (!best || f.node.start >= best.node.start)) best = f;
  return best;
}

// A changed constant's new value is only right if everything that reads it runs new code: every function that
// reads it is patched too (where it lives), and a read at module level — which already ran — is refused.
function pullConstantReaders(d: ModuleDiff): void {
  if (d.movedConstants.size === 0) return;
  const byNode = new Map<N, FuncDiff>();
  for (const f of d.funcs) if (f.new) byNode.set(f.new.node, f);
  for (const [id, scope] of d.scopes.refs) {
    if (scope !== d.scopes.module || !d.movedConstants.has(id.name)) continue;
    const decl = d.new.top.bindings.get(id.name);
    if (decl && id.start >= decl.node.start && id.end <= decl.node.end) continue;
    const fn = innermostFunc(d.new.funcs, id.start);
    if (!fn) {
      d.refusals.push(
        refusal(
          d.new,
          id,
          `changed module-level ${decl?.kind ?? 'const'} '${id.name}' is read at module level`,
          'what was computed from its old value at load stays; recompute it in a postPatch callback, or restart',
        ),
      );
      continue;
    }
    const f = byNode.get(fn.node);
    if (f && f.change === 'unchanged') {
      f.change = 'changed';
      f.why = `reads changed constant '${id.name}'`;
    }
  }
}
