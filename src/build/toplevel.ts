// A module's top level as the builder sees it: bindings with their initial values, other statements, exports, classes.
import { canonical, isFunctionNode, type N } from './ast.js';
import { patternNames } from './scope.js';

export type BindingKind = 'var' | 'let' | 'const' | 'function' | 'class' | 'import';

export interface Binding {
  name: string;
  kind: BindingKind;
  /** The declarator, function or class declaration (or import specifier) that makes it. */
  node: N;
  /** The statement holding it, for its text and line. */
  statement: N;
  /** Initial value (declarator init, or the function/class node itself). */
  init: N | null;
  /** Canonical text of the initial value, nested functions as placeholders. */
  canon: string;
  /** True when the value is a function (declaration, or a function/arrow expression assigned). */
  isFunction: boolean;
  /** True when the value is a class. */
  isClass: boolean;
  /** Several names from one destructuring declarator. */
  group: boolean;
  exported: boolean;
}

export interface TopLevel {
  bindings: Map<string, Binding>;
  /** Statements that are not declarations: side effects, CommonJS exports, `export { … }` lists. */
  others: { canon: string; node: N; exports: boolean }[];
  /** ESM: exported names (`default` for the default export, `*<source` for re-exports) → the export statement. */
  exports: Map<string, N>;
  imports: { canon: string; node: N; source: string }[];
}

export function topLevel(program: N): TopLevel {
  const t: TopLevel = { bindings: new Map(), others: [], exports: new Map(), imports: [] };
  for (const st of program.body as N[]) statement(st, st, t, false);
  return t;
}

function statement(st: N, outer: N, t: TopLevel, exported: boolean): void {
  switch (st.type) {
    case 'FunctionDeclaration':
    case 'ClassDeclaration': {
      if (!st.id) {
        t.others.push({ canon: canonical(st, false), node: outer, exports: true });
        return;
      }
      const isClass = st.type === 'ClassDeclaration';
      add(t, {
        name: st.id.name,
        kind: isClass ? 'class' : 'function',
        node: st,
        statement: outer,
        init: st,
        canon: canonical(st, false),
        isFunction: !isClass,
        isClass,
        group: false,
        exported,
      });
      if (exported) t.exports.set(st.id.name, outer);
      return;
    }
    case 'VariableDeclaration':
      for (const d of st.declarations as N[]) {
        const names = patternNames(d.id);
        const init = (d.init as N | null) ?? null;
        const fn = init !== null && isFunctionNode(init);
        const cls = init !== null && init.type === 'ClassExpression';
        for (const id of names) {
          add(t, {
            name: id.name,
            kind: st.kind,
            node: d,
            statement: outer,
            init,
            canon: d.id.type === 'Identifier' ? (init ? canonical(init, false) : '') : canonical(d, false),
            isFunction: fn,
            isClass: cls,
            group: d.id.type !== 'Identifier',
            exported,
          });
          if (exported) t.exports.set(id.name, outer);
        }
      }
      return;
    case 'ImportDeclaration':
      t.imports.push({ canon: canonical(st, false), node: st, source: String(st.source.value) });
      for (const sp of st.specifiers as N[])
        add(t, {
          name: sp.local.name,
          kind: 'import',
          node: sp,
          statement: st,
          init: null,
          canon: canonical(st, false),
          isFunction: false,
          isClass: false,
          group: false,
          exported: false,
        });
      return;
    case 'ExportNamedDeclaration':
      if (st.declaration) {
        statement(st.declaration, st, t, true);
        return;
      }
      for (const sp of st.specifiers as N[])
        t.exports.set(
          st.source
            ? `${String(sp.exported.name ?? sp.exported.value)}<${String(st.source.value)}`
            : String(sp.exported.name ?? sp.exported.value),
          st,
        );
      t.others.push({ canon: canonical(st, false), node: st, exports: true });
      return;
    case 'ExportDefaultDeclaration': {
      t.exports.set('default', st);
      const d = st.declaration as N;
      if ((d.type === 'FunctionDeclaration' || d.type === 'ClassDeclaration') && d.id)
        statement(d, st, t, false);
      else t.others.push({ canon: canonical(st, false), node: st, exports: true });
      return;
    }
    case 'ExportAllDeclaration':
      t.exports.set(
        `*<${String(st.source.value)}${st.exported ? ` as ${String(st.exported.name)}` : ''}`,
        st,
      );
      t.others.push({ canon: canonical(st, false), node: st, exports: true });
      return;
    case 'EmptyStatement':
      return;
    default:
      t.others.push({ canon: canonical(st, false), node: st, exports: touchesCommonJsExports(st) });
  }
}

function add(t: TopLevel, b: Binding): void {
  // A `var` declared twice, or a function declared twice: the last one wins, as at run time.
  t.bindings.set(b.name, b);
}

/** The property `exports.x = …` or `module.exports.x = …` assigns ('x'), or null for any other statement. */
export function exportTarget(st: N): string | null {
  if (st.type !== 'ExpressionStatement' || st.expression.type !== 'AssignmentExpression') return null;
  const t = st.expression.left as N;
  if (t.type !== 'MemberExpression' || t.computed || t.property.type !== 'Identifier') return null;
  const o = t.object as N;
  const isExports =
    (o.type === 'Identifier' && o.name === 'exports') ||
    (o.type === 'MemberExpression' &&
      !o.computed &&
      o.object.type === 'Identifier' &&
      o.object.name === 'module' &&
      o.property.name === 'exports');
  return isExports ? String(t.property.name) : null;
}

/** True when a statement assigns `module.exports`, `exports.x` or `module.exports.x`. */
function touchesCommonJsExports(st: N): boolean {
  if (st.type !== 'ExpressionStatement') return false;
  let e = st.expression as N;
  while (e.type === 'AssignmentExpression') {
    let target = e.left as N;
    while (target.type === 'MemberExpression') {
      if (
        target.object.type === 'Identifier' &&
        (target.object.name === 'exports' || target.object.name === 'module')
      )
        return true;
      target = target.object;
    }
    e = e.right;
  }
  return false;
}

const DATA_CONSTRUCTORS = new Set([
  'Set',
  'Map',
  'RegExp',
  'WeakSet',
  'WeakMap',
  'Array',
  'Object',
  'String',
  'Number',
]);
const DATA_CALLS = new Set([
  'Object.freeze',
  'Object.create',
  'Symbol',
  'Symbol.for',
  'String.raw',
  'RegExp',
  'Object.assign',
]);

/**
 * True when evaluating `n` again inside the patch is harmless: literals, regular expressions, arrays and objects of
 * such, new Set/Map/RegExp of such, and reads of other bindings. Such a value can move into the patch.
 */
export function isDataLike(n: N | null): boolean {
  if (n === null) return true;
  switch (n.type) {
    case 'Literal':
    case 'Identifier':
      return true;
    case 'TemplateLiteral':
      return (n.expressions as N[]).every(isDataLike);
    case 'ArrayExpression':
      return (n.elements as (N | null)[]).every(
        (e) => e === null || isDataLike(e.type === 'SpreadElement' ? e.argument : e),
      );
    case 'ObjectExpression':
      return (n.properties as N[]).every((p) =>
        p.type === 'SpreadElement'
          ? isDataLike(p.argument)
          : p.kind === 'init' && !p.method && (!p.computed || isDataLike(p.key)) && isDataLike(p.value),
      );
    case 'UnaryExpression':
      return n.operator !== 'delete' && isDataLike(n.argument);
    case 'BinaryExpression':
    case 'LogicalExpression':
      return isDataLike(n.left) && isDataLike(n.right);
    case 'ConditionalExpression':
      return isDataLike(n.test) && isDataLike(n.consequent) && isDataLike(n.alternate);
    case 'MemberExpression':
      return isDataLike(n.object) && (!n.computed || isDataLike(n.property));
    case 'NewExpression':
      return (
        n.callee.type === 'Identifier' &&
        DATA_CONSTRUCTORS.has(n.callee.name) &&
        (n.arguments as N[]).every(isDataLike)
      );
    case 'CallExpression': {
      const c = n.callee as N;
      const name =
        c.type === 'Identifier'
          ? c.name
          : c.type === 'MemberExpression' && !c.computed && c.object.type === 'Identifier'
            ? `${c.object.name}.${c.property.name}`
            : '';
      return DATA_CALLS.has(name) && (n.arguments as N[]).every(isDataLike);
    }
    default:
      return false;
  }
}
