// create-diff-object for JavaScript: matches one module's old and new versions function by function and
// classifies every difference — unchanged, changed, new, removed, renamed — or refuses it with a remedy.
import { canonical, forEachChild, isFunctionNode, type N } from './ast.js';
import { matchFuncs, renamedFunctions } from './match.js';
import { refusal, type FuncDiff, type ModuleDiff, type ModuleSide } from './module-diff.js';
import { compareBindings, compareExports, compareStatements } from './module-level.js';
import { analyzeScopes } from './scope.js';
import { innermostFunc } from './symbols.js';
import { onlyNewDeclarations } from './wrapper.js';

export interface CompareOptions {
  /** Accept (with a note) changes in code that ran once at load, instead of refusing them. */
  ignoreLoadTime?: boolean;
}

/** Compares two versions of a module whose bytes differ. Pure: refusals and notes are in what it returns. */
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
