// Compares what a module did while it loaded — its top-level statements, module-level bindings, classes, imports
// and exports — and refuses what a running module cannot take, since that code will not run again.
import { canonical, forEachChild, type N } from './ast.js';
import { excerpt, refusal, type ModuleDiff } from './module-diff.js';
import { analyzeScopes } from './scope.js';
import { innermostFunc } from './symbols.js';
import { exportTarget, isDataLike, type Binding } from './toplevel.js';

/**
 * Pairs the top-level statements that are not declarations (old against new, by canonical text, reading renamed
 * functions by their running names) and refuses each one added, changed or removed, except a new primitive
 * `module.exports` under --ignore-load-time, which is a note. Records into `d`.
 */
export function compareStatements(d: ModuleDiff, ignore: boolean): void {
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

/**
 * Compares the module-level bindings: a changed constant (or a never-assigned `var`/`let`) of plain data moves into
 * the patch, new plain data is settled, classes are compared member by member, and any other new or changed
 * binding is refused — or, under --ignore-load-time, noted when no changed code reads it. Records into `d`; call
 * after `d.funcs` is matched.
 */
export function compareBindings(d: ModuleDiff, ignore: boolean): void {
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

/** Refuses new and removed ES exports, and new imports (unless a changed import was refused already). */
export function compareExports(d: ModuleDiff): void {
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
