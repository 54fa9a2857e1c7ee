// Scope analysis: which declaration every identifier in a module refers to, so patched code can be rewired.
import { forEachChild, type N } from './ast.js';

export type ScopeKind = 'module' | 'function' | 'block' | 'class' | 'catch';

export interface Scope {
  kind: ScopeKind;
  node: N;
  parent: Scope | null;
  /** Declared name → the identifier (or implicit node) that declares it. */
  names: Map<string, N>;
}

export interface ScopeInfo {
  module: Scope;
  /** Every identifier that reads or writes a variable → the scope declaring it (null: a global). */
  refs: Map<N, Scope | null>;
  /** Identifiers that are the value of a shorthand property (`{ x }`): rewriting them needs `x: …`. */
  shorthand: Set<N>;
  /** Identifiers called directly (`x()`, x`…`): rewriting them to a member must not change `this`. */
  callees: Set<N>;
  /** Identifiers assigned to (`x = …`, `x++`, `[x] = …`, `for (x of …)`). */
  writes: Set<N>;
  scopeOf: Map<N, Scope>;
}

/** Names CommonJS gives every module through its wrapper function. */
export const COMMONJS_NAMES = ['require', 'module', 'exports', '__filename', '__dirname'];

/** Analyses a whole Program. Pure; linear in the size of the tree. */
export function analyzeScopes(program: N, format: 'module' | 'commonjs'): ScopeInfo {
  const mod: Scope = { kind: 'module', node: program, parent: null, names: new Map() };
  if (format === 'commonjs') for (const n of COMMONJS_NAMES) mod.names.set(n, program);
  const info: ScopeInfo = {
    module: mod,
    refs: new Map(),
    shorthand: new Set(),
    callees: new Set(),
    writes: new Set(),
    scopeOf: new Map(),
  };
  info.scopeOf.set(program, mod);
  new Declarer(info).body(program.body as N[], mod);
  new Resolver(info).stmts(program.body as N[], mod);
  return info;
}

function child(kind: ScopeKind, node: N, parent: Scope, info: ScopeInfo): Scope {
  const s: Scope = { kind, node, parent, names: new Map() };
  info.scopeOf.set(node, s);
  return s;
}

function varScope(s: Scope): Scope {
  let c: Scope = s;
  while (c.kind !== 'function' && c.kind !== 'module' && c.parent) c = c.parent;
  return c;
}

/** Identifiers a binding pattern declares. */
export function patternNames(p: N | null, out: N[] = []): N[] {
  if (!p) return out;
  switch (p.type) {
    case 'Identifier':
      out.push(p);
      break;
    case 'ObjectPattern':
      for (const prop of p.properties as N[])
        patternNames(prop.type === 'RestElement' ? prop.argument : prop.value, out);
      break;
    case 'ArrayPattern':
      for (const e of p.elements as (N | null)[]) patternNames(e, out);
      break;
    case 'RestElement':
      patternNames(p.argument, out);
      break;
    case 'AssignmentPattern':
      patternNames(p.left, out);
      break;
  }
  return out;
}

// Pass 1: create scopes and put every declaration where JavaScript puts it (var and functions hoisted).
class Declarer {
  constructor(private readonly info: ScopeInfo) {}

  body(stmts: N[], s: Scope): void {
    for (const st of stmts) this.node(st, s);
  }

  declare(s: Scope, id: N | null): void {
    for (const n of patternNames(id)) s.names.set(n.name as string, n);
  }

  node(n: N, s: Scope): void {
    switch (n.type) {
      case 'FunctionDeclaration':
        if (n.id) s.names.set(n.id.name, n.id);
        this.fn(n, s);
        return;
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
        this.fn(n, s);
        return;
      case 'ClassDeclaration':
      case 'ClassExpression': {
        if (n.type === 'ClassDeclaration' && n.id) s.names.set(n.id.name, n.id);
        if (n.superClass) this.node(n.superClass, s);
        const cs = child('class', n, s, this.info);
        if (n.id) cs.names.set(n.id.name, n.id);
        this.node(n.body, cs);
        return;
      }
      case 'StaticBlock': {
        const fs = child('function', n, s, this.info);
        this.body(n.body, fs);
        return;
      }
      case 'VariableDeclaration':
        for (const d of n.declarations as N[]) {
          this.declare(n.kind === 'var' ? varScope(s) : s, d.id);
          this.node(d, s);
        }
        return;
      case 'ImportDeclaration':
        for (const sp of n.specifiers as N[]) s.names.set(sp.local.name, sp.local);
        return;
      case 'BlockStatement':
        this.body(n.body, child('block', n, s, this.info));
        return;
      case 'ForStatement':
      case 'ForInStatement':
      case 'ForOfStatement':
      case 'SwitchStatement': {
        const bs = child('block', n, s, this.info);
        forEachChild(n, (c) => this.node(c, bs));
        return;
      }
      case 'CatchClause': {
        const cs = child('catch', n, s, this.info);
        this.declare(cs, n.param);
        if (n.param) this.node(n.param, cs);
        // The catch body shares the catch scope, as the parameter and the body's lets may not clash anyway.
        this.body(n.body.body, cs);
        this.info.scopeOf.set(n.body, cs);
        return;
      }
      default:
        forEachChild(n, (c) => this.node(c, s));
    }
  }

  fn(n: N, s: Scope): void {
    const fs = child('function', n, s, this.info);
    // A named function expression sees its own name (and a declaration sees it through the outer scope).
    if (n.type === 'FunctionExpression' && n.id) fs.names.set(n.id.name, n.id);
    for (const p of n.params as N[]) {
      this.declare(fs, p);
      this.node(p, fs);
    }
    if (n.body.type === 'BlockStatement') {
      this.info.scopeOf.set(n.body, fs);
      this.body(n.body.body, fs);
    } else this.node(n.body, fs);
  }
}

// Pass 2: walk again with the scopes of pass 1 and resolve every identifier in a reading or writing position.
class Resolver {
  constructor(private readonly info: ScopeInfo) {}

  ref(id: N, s: Scope): void {
    let c: Scope | null = s;
    while (c && !c.names.has(id.name as string)) c = c.parent;
    this.info.refs.set(id, c);
  }

  stmts(list: N[], s: Scope): void {
    for (const st of list) this.node(st, s);
  }

  /** A binding pattern in a declaration: its names are not references, its defaults and computed keys are. */
  decl(p: N | null, s: Scope): void {
    if (!p) return;
    switch (p.type) {
      case 'Identifier':
        return;
      case 'ObjectPattern':
        for (const prop of p.properties as N[]) {
          if (prop.type === 'RestElement') this.decl(prop.argument, s);
          else {
            if (prop.computed) this.node(prop.key, s);
            this.decl(prop.value, s);
          }
        }
        return;
      case 'ArrayPattern':
        for (const e of p.elements as (N | null)[]) this.decl(e, s);
        return;
      case 'RestElement':
        this.decl(p.argument, s);
        return;
      case 'AssignmentPattern':
        this.decl(p.left, s);
        this.node(p.right, s);
        return;
      default:
        this.node(p, s); // a member expression target in an assignment pattern
    }
  }

  node(n: N, s: Scope): void {
    const own = this.info.scopeOf.get(n);
    switch (n.type) {
      case 'Identifier':
        this.ref(n, s);
        return;
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression': {
        const fs = own ?? s;
        for (const p of n.params as N[]) this.decl(p, fs);
        if (n.body.type === 'BlockStatement') this.stmts(n.body.body, fs);
        else this.node(n.body, fs);
        return;
      }
      case 'ClassDeclaration':
      case 'ClassExpression':
        if (n.superClass) this.node(n.superClass, s);
        this.node(n.body, own ?? s);
        return;
      case 'MethodDefinition':
      case 'PropertyDefinition':
        if (n.computed) this.node(n.key, s);
        if (n.value) this.node(n.value, s);
        return;
      case 'Property':
        if (n.computed) this.node(n.key, s);
        if (n.shorthand && n.value.type === 'Identifier') this.info.shorthand.add(n.value);
        if (n.value.type === 'AssignmentPattern' && n.shorthand) this.info.shorthand.add(n.value.left);
        this.node(n.value, s);
        return;
      case 'MemberExpression':
        this.node(n.object, s);
        if (n.computed) this.node(n.property, s);
        return;
      case 'CallExpression':
      case 'NewExpression':
        if (n.type === 'CallExpression' && n.callee.type === 'Identifier') this.info.callees.add(n.callee);
        this.node(n.callee, s);
        for (const a of n.arguments as N[]) this.node(a, s);
        return;
      case 'TaggedTemplateExpression':
        if (n.tag.type === 'Identifier') this.info.callees.add(n.tag);
        this.node(n.tag, s);
        this.node(n.quasi, s);
        return;
      case 'VariableDeclaration':
        for (const d of n.declarations as N[]) {
          this.decl(d.id, s);
          if (d.init) this.node(d.init, s);
        }
        return;
      case 'CatchClause': {
        const cs = own ?? s;
        this.decl(n.param, cs);
        this.stmts(n.body.body, cs);
        return;
      }
      case 'BlockStatement':
        this.stmts(n.body, own ?? s);
        return;
      case 'StaticBlock':
        this.stmts(n.body, own ?? s);
        return;
      case 'AssignmentExpression':
      case 'ForInStatement':
      case 'ForOfStatement': {
        const target = n.left as N;
        if (target.type !== 'VariableDeclaration')
          for (const id of patternNames(target)) this.info.writes.add(id);
        forEachChild(n, (c) => this.node(c, own ?? s));
        return;
      }
      case 'UpdateExpression':
        if (n.argument.type === 'Identifier') this.info.writes.add(n.argument);
        this.node(n.argument, s);
        return;
      case 'LabeledStatement':
        this.node(n.body, s);
        return;
      case 'BreakStatement':
      case 'ContinueStatement':
      case 'MetaProperty':
      case 'PrivateIdentifier':
      case 'ImportDeclaration':
        return;
      case 'ExportNamedDeclaration':
        if (n.declaration) this.node(n.declaration, s);
        else if (!n.source) for (const sp of n.specifiers as N[]) this.ref(sp.local, s);
        return;
      case 'ExportAllDeclaration':
        return;
      case 'ExportDefaultDeclaration':
        this.node(n.declaration, s);
        return;
      default: {
        const inner = own ?? s;
        forEachChild(n, (c) => this.node(c, inner));
      }
    }
  }
}
