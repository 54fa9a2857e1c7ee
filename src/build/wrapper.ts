// Variables of a function that ran once at load (a bundle's wrapper): which new ones a patch may define itself.
import { canonical, forEachChild, isFunctionNode, type N } from './ast.js';
import type { ModuleDiff } from './module-diff.js';
import type { Scope, ScopeInfo } from './scope.js';
import { isDataLike } from './toplevel.js';

const declarators = new WeakMap<N, Map<N, N>>();

/**
 * The declarator whose identifier is `id` in function `fn`'s own body (not in nested functions), or undefined.
 * One walk per function, cached: a bundle's wrapper is most of its file.
 */
function declaratorOf(fn: N, id: N): N | undefined {
  let own = declarators.get(fn);
  if (!own) {
    const map = new Map<N, N>();
    const walk = (n: N): void => {
      if (n.type === 'VariableDeclarator' && n.id.type === 'Identifier') map.set(n.id, n);
      if (n !== fn && isFunctionNode(n)) return;
      forEachChild(n, walk);
    };
    walk(fn);
    declarators.set(fn, (own = map));
  }
  return own.get(id);
}

function isWritten(scopes: ScopeInfo, scope: Scope, name: string): boolean {
  for (const id of scopes.writes) if (id.name === name && scopes.refs.get(id) === scope) return true;
  return false;
}

/**
 * The declarator of `name` when it is a variable of load-time function `scope` whose value is plain data that
 * nothing assigns again (lodash 4.17.21's `reForbiddenIdentifierChars` in its wrapper): the value the wrapper
 * made at load is the value its initialiser makes now, so a patch can make it itself. Else undefined.
 */
export function wrapperConstant(d: ModuleDiff, once: Set<N>, scope: Scope, name: string): N | undefined {
  if (scope.kind !== 'function' || !once.has(scope.node)) return undefined;
  const id = scope.names.get(name);
  if (!id) return undefined;
  const decl = declaratorOf(scope.node, id);
  if (!decl || decl.id.type !== 'Identifier' || !decl.init || !isDataLike(decl.init)) return undefined;
  if (isFunctionNode(decl.init) || isWritten(d.scopes, scope, name)) return undefined;
  return decl;
}

/**
 * True when the only differences between two versions of a load-time function are function declarations
 * (compared and patched as functions of their own) and new `var`s of plain data that nothing assigns — which
 * the target never needs unless patched code reads them, and then the patch defines them (wrapperConstant).
 */
export function onlyNewDeclarations(d: ModuleDiff, oldFn: N, newFn: N): boolean {
  if (oldFn.body.type !== 'BlockStatement' || newFn.body.type !== 'BlockStatement') return false;
  const params = (f: N) => (f.params as N[]).map((p) => canonical(p, false)).join(',');
  if (params(oldFn) !== params(newFn)) return false;
  const scope = d.scopes.scopeOf.get(newFn);
  const oldNames = new Set<string>();
  for (const st of oldFn.body.body as N[])
    if (st.type === 'VariableDeclaration')
      for (const v of st.declarations as N[]) if (v.id.type === 'Identifier') oldNames.add(String(v.id.name));
  const kept = (st: N, isNew: boolean): boolean => {
    if (st.type === 'FunctionDeclaration') return false;
    if (!isNew || st.type !== 'VariableDeclaration' || !scope) return true;
    const fresh = (st.declarations as N[]).every(
      (v) =>
        v.id.type === 'Identifier' &&
        !oldNames.has(String(v.id.name)) &&
        v.init &&
        !isFunctionNode(v.init) &&
        isDataLike(v.init) &&
        !isWritten(d.scopes, scope, String(v.id.name)),
    );
    return !fresh;
  };
  const o = (oldFn.body.body as N[]).filter((st) => kept(st, false)).map((st) => canonical(st, false));
  const n = (newFn.body.body as N[]).filter((st) => kept(st, true)).map((st) => canonical(st, false));
  return o.length === n.length && o.every((c, i) => c === n[i]);
}

/** Standard constructors a wrapper may alias from its context object (`var Error = context.Error`). */
const STANDARD = new Set([
  'Array',
  'Boolean',
  'Date',
  'Error',
  'EvalError',
  'Function',
  'JSON',
  'Map',
  'Math',
  'Number',
  'Object',
  'Promise',
  'RangeError',
  'ReferenceError',
  'RegExp',
  'Set',
  'String',
  'Symbol',
  'SyntaxError',
  'TypeError',
  'URIError',
  'WeakMap',
  'WeakSet',
]);

/**
 * True when `name` is a variable of function `scope` that aliases the standard global of the same name from
 * an object (`var Error = context.Error`, lodash's runInContext) and is never assigned: a patch reads the global.
 * In a process with one realm, which is every Node service that does not pass another realm's global to
 * runInContext, they are the same object.
 */
export function isGlobalAlias(d: ModuleDiff, scope: Scope, name: string): boolean {
  if (!STANDARD.has(name) || scope.kind !== 'function') return false;
  const id = scope.names.get(name);
  if (!id) return false;
  const decl = declaratorOf(scope.node, id);
  const init = decl?.init as N | undefined;
  return (
    init?.type === 'MemberExpression' &&
    !init.computed &&
    init.property.type === 'Identifier' &&
    init.property.name === name &&
    !isWritten(d.scopes, scope, name)
  );
}
