// The one walk over the AST: finds every function, names it (DESIGN.md §6), and resolves scopes as it goes.
import type { FuncKind, ModuleFormat } from './types.js';
import { newFunc, type FuncInfo } from './funcs.js';
import { joinName, keyPart, targetName } from './names.js';
import {
  Scope,
  checkReserved,
  declareLexicals,
  hasLexicals,
  hoistStatements,
  patternNames,
} from './scope.js';

type N = any;

interface Hint {
  name: string;
  /** A `const`/`let`/`var` the value is the initializer of: a SELF candidate. */
  selfVar?: string | undefined;
}

interface FuncOptions {
  selfVar?: string | undefined;
  selfFname?: string | undefined;
  selfExpr?: string | undefined;
  selfShadow?: string | undefined;
  /** Where the function's head starts (a method's key), for `// livepatch: notrace`. */
  head?: number;
}

/** The CommonJS wrapper's parameters: bindings of every CommonJS module. */

/** Why the functions of an asm.js module (`'use asm'`) are not instrumented. */
export const ASM_MODULE = "asm.js module ('use asm'), left as written so that V8 still compiles it as asm.js";

function isAsmModule(node: N): boolean {
  if (node.body.type !== 'BlockStatement') return false;
  for (const s of node.body.body) {
    if (s.directive === undefined) return false;
    if (s.directive === 'use asm') return true;
  }
  return false;
}

export const COMMONJS_BINDINGS = ['exports', 'require', 'module', '__filename', '__dirname'];

export interface Analysis {
  funcs: FuncInfo[];
  moduleScope: Scope;
}

export class Analyzer {
  readonly funcs: FuncInfo[] = [];
  readonly moduleScope: Scope;
  private scope: Scope;
  private cur: FuncInfo | null = null;
  private moduleAnon = 0;
  /** The function whose `this` a class field initializer or static block hides from `markUp`. */
  private cutoff: FuncInfo | null | undefined = undefined;
  /** Arrows whose parameter list is being walked (the names referred to there are collected). */
  private paramOwners: FuncInfo[] = [];
  private notraceAt = 0;

  constructor(
    format: ModuleFormat,
    private readonly lineOf: (pos: number) => number,
    /** Ends of `// livepatch: notrace` comments, ascending. */
    private readonly notrace: number[],
  ) {
    this.moduleScope = new Scope('module', null, null);
    this.scope = this.moduleScope;
    if (format === 'commonjs') for (const n of COMMONJS_BINDINGS) this.moduleScope.declare(n, 'param');
  }

  program(ast: N): Analysis {
    hoistStatements(ast.body, this.moduleScope, this.moduleScope);
    this.stmts(ast.body);
    return { funcs: this.funcs, moduleScope: this.moduleScope };
  }

  // ---- references ----

  private ref(name: string, write: boolean): void {
    checkReserved(name);
    // Indexed loops in the walk: it runs cold (interpreted) in a fresh process, where for-of pays for an iterator.
    const owners = this.paramOwners;
    for (let k = 0; k < owners.length; k++) owners[k]?.paramRefs?.add(name);
    let s: Scope | null = this.scope;
    let b;
    for (; s !== null; s = s.parent) {
      b = s.names.get(name);
      if (b !== undefined) break;
      if (name === 'arguments' && s.kind === 'function' && !(s.fn as FuncInfo).isArrow) {
        (s.fn as FuncInfo).usesArguments = true;
        return;
      }
    }
    if (b === undefined) return;
    if (write) b.writes++;
    // Module bindings are reached through `bindings`; a class's inner name is immutable and needs no SCOPE.
    if (b.scope.kind === 'module' || b.kind === 'cname') return;
    const owner = b.scope.fn;
    if (this.cur !== owner) {
      b.captured = true;
      b.scope.hasCaptured = true;
    }
    for (let f = this.cur; f !== null && f !== owner; f = f.parentFn) {
      if (f.captures.has(name)) break;
      f.captures.set(name, b);
    }
  }

  /** Marks `this`/`super`/`new.target`/private use on the current function and the arrows it lexically passes. */
  private markUp(flag: 'usesThis' | 'usesSuper' | 'usesNewTarget' | 'usesPrivate'): void {
    for (let f = this.cur; f !== null && f !== this.cutoff; f = f.parentFn) {
      f[flag] = true;
      if (!f.isArrow) break;
    }
  }

  // ---- functions ----

  private anonName(): string {
    const n = this.cur === null ? ++this.moduleAnon : ++this.cur.anon;
    return `<anonymous>[${n}]`;
  }

  private func(node: N, kind: FuncKind, local: string | null, opts: FuncOptions): void {
    const parent = this.cur;
    const localName = local ?? this.anonName();
    const name = parent === null ? localName : `${parent.name}>${localName}`;
    let outer = this.scope;
    if (opts.selfFname !== undefined) {
      outer = new Scope('fname', outer, null);
    }
    const fnScope = new Scope('function', outer, null);
    const f = newFunc(node, kind, name, parent, this.scope, fnScope);
    (fnScope as { fn: unknown }).fn = f;
    if (opts.selfFname !== undefined) {
      (outer as { fn: unknown }).fn = f;
      outer.declare(opts.selfFname, 'fname');
    }
    f.selfVar = opts.selfVar;
    f.selfFname = opts.selfFname;
    f.selfExpr = opts.selfExpr;
    f.selfShadow = opts.selfShadow;
    const start = node.start as number;
    f.line = this.lineOf(start);
    this.checkNotrace(f, opts.head ?? start);
    // An asm.js module is compiled as asm.js only if it is exactly asm.js: a prologue anywhere in it would make V8
    // run it as ordinary JavaScript, with the same results at a different speed. It is left as written.
    if ((parent !== null && parent.refused === ASM_MODULE) || isAsmModule(node)) f.refused = ASM_MODULE;
    this.funcs.push(f);

    for (const p of node.params) {
      if (p.type !== 'Identifier') f.simpleParams = false;
      patternNames(p, (n) => {
        if (fnScope.names.has(n)) f.duplicateParams = true;
        fnScope.declare(n, 'param');
        f.paramNames.push(n);
      });
    }
    fnScope.bodyNames = new Set();
    const block = node.body.type === 'BlockStatement';
    if (block) hoistStatements(node.body.body, fnScope, fnScope);

    const savedScope = this.scope;
    const savedCur = this.cur;
    this.scope = fnScope;
    this.cur = f;
    const track = f.isArrow && !f.simpleParams;
    if (track) {
      f.paramRefs = new Set();
      this.paramOwners.push(f);
    }
    for (const p of node.params) this.pattern(p, 'param');
    if (track) this.paramOwners.pop();
    if (block) this.stmts(node.body.body);
    else this.expr(node.body);
    this.scope = savedScope;
    this.cur = savedCur;
  }

  /** A notrace comment applies to the first function whose head starts after it, on its line or the next. */
  private checkNotrace(f: FuncInfo, head: number): void {
    while (this.notraceAt < this.notrace.length) {
      const end = this.notrace[this.notraceAt] as number;
      if (end > head) return;
      this.notraceAt++;
      if (this.lineOf(head) - this.lineOf(end) <= 1) {
        f.notrace = true;
        return;
      }
    }
  }

  private cls(node: N, hint: Hint | undefined): void {
    const inner: string | undefined = node.id?.name;
    const cname = inner ?? hint?.name ?? this.anonName();
    if (node.superClass) this.expr(node.superClass);
    const saved = this.scope;
    if (inner !== undefined) {
      this.scope = new Scope('cname', saved, this.cur);
      this.scope.declare(inner, 'cname');
    }
    let computed = 0;
    for (const m of node.body.body) {
      if (m.type === 'StaticBlock') {
        this.withCutoff(() => {
          const savedBlock = this.scope;
          this.scope = new Scope('block', savedBlock, this.cur);
          hoistStatements(m.body, this.scope, this.scope);
          for (const s of m.body) this.stmt(s);
          this.scope = savedBlock;
        });
        continue;
      }
      if (m.computed) this.expr(m.key);
      const part = keyPart(m.key, m.computed) ?? `.<computed>[${++computed}]`;
      const base = m.static ? cname : `${cname}.prototype`;
      if (m.type === 'PropertyDefinition') {
        if (m.value) {
          const fieldBase = m.static ? cname : `${cname}.<instance>`;
          this.withCutoff(() => this.expr(m.value, { name: joinName(fieldBase, part) }));
        }
        continue;
      }
      // MethodDefinition
      const access = selfAccess(m, part);
      const shadow = { selfShadow: inner, head: m.start as number };
      if (m.kind === 'constructor') {
        this.func(m.value, 'constructor', cname, { ...shadow, selfExpr: inner });
      } else if (m.kind === 'get' || m.kind === 'set') {
        const owner = m.static ? inner : `${inner}.prototype`;
        const selfExpr =
          inner !== undefined && access !== undefined
            ? `Object.getOwnPropertyDescriptor(${owner}, ${access.key}).${m.kind}`
            : undefined;
        const kind = m.kind === 'get' ? 'getter' : 'setter';
        this.func(m.value, kind, `${m.kind} ${joinName(base, part)}`, { ...shadow, selfExpr });
      } else {
        const owner = m.static ? inner : `${inner}.prototype`;
        const selfExpr = inner !== undefined && access !== undefined ? owner + access.member : undefined;
        this.func(m.value, 'method', joinName(base, part), { ...shadow, selfExpr });
      }
    }
    this.scope = saved;
  }

  private withCutoff(fn: () => void): void {
    const saved = this.cutoff;
    this.cutoff = this.cur;
    fn();
    this.cutoff = saved;
  }

  private obj(node: N, hint: Hint | undefined): void {
    const base = hint?.name;
    let computed = 0;
    for (const p of node.properties) {
      if (p.type === 'SpreadElement') {
        this.expr(p.argument);
        continue;
      }
      if (p.computed) this.expr(p.key);
      const part = keyPart(p.key, p.computed) ?? `.<computed>[${++computed}]`;
      if (p.kind === 'get' || p.kind === 'set') {
        const kind = p.kind === 'get' ? 'getter' : 'setter';
        this.func(p.value, kind, `${p.kind} ${joinName(base, part)}`, { head: p.start });
      } else if (p.method) {
        this.func(p.value, 'method', joinName(base, part), { head: p.start });
      } else if (p.shorthand) {
        this.expr(p.value);
      } else {
        this.expr(p.value, { name: joinName(base, part) }, p.start);
      }
    }
  }

  // ---- statements ----

  private block(stmts: N[]): void {
    // Most blocks (an if's or a loop's body) declare nothing: no scope for them, so no allocation and one level
    // less for every name looked up inside. Nothing is declared into a block scope after its statements' pre-scan.
    if (!hasLexicals(stmts)) {
      this.stmts(stmts);
      return;
    }
    const saved = this.scope;
    this.scope = new Scope('block', saved, this.cur);
    declareLexicals(stmts, this.scope);
    this.stmts(stmts);
    this.scope = saved;
  }

  private stmts(list: N[]): void {
    for (let k = 0; k < list.length; k++) this.stmt(list[k]);
  }

  private exprs(list: N[]): void {
    for (let k = 0; k < list.length; k++) this.expr(list[k]);
  }

  private stmt(s: N): void {
    switch (s.type) {
      case 'ExpressionStatement':
        this.expr(s.expression);
        break;
      case 'BlockStatement':
        this.block(s.body);
        break;
      case 'VariableDeclaration':
        this.declarations(s);
        break;
      case 'FunctionDeclaration':
        this.func(s, 'function', s.id.name, { selfVar: s.id.name });
        break;
      case 'ClassDeclaration':
        this.cls(s, undefined);
        break;
      case 'ReturnStatement':
      case 'ThrowStatement':
        if (s.argument) this.expr(s.argument);
        break;
      case 'IfStatement':
        this.expr(s.test);
        this.stmt(s.consequent);
        if (s.alternate) this.stmt(s.alternate);
        break;
      case 'ForStatement': {
        const saved = this.scope;
        this.scope = new Scope('block', saved, this.cur);
        if (s.init) {
          if (s.init.type === 'VariableDeclaration') {
            declareLexicals([s.init], this.scope);
            this.declarations(s.init);
          } else this.expr(s.init);
        }
        if (s.test) this.expr(s.test);
        if (s.update) this.expr(s.update);
        this.stmt(s.body);
        this.scope = saved;
        break;
      }
      case 'ForInStatement':
      case 'ForOfStatement': {
        const saved = this.scope;
        this.scope = new Scope('block', saved, this.cur);
        if (s.left.type === 'VariableDeclaration') {
          declareLexicals([s.left], this.scope);
          for (const d of s.left.declarations) {
            this.pattern(d.id, 'bind');
            patternNames(d.id, (n) => this.written(n, 2));
          }
        } else this.pattern(s.left, 'assign');
        this.expr(s.right);
        this.stmt(s.body);
        this.scope = saved;
        break;
      }
      case 'WhileStatement':
      case 'DoWhileStatement':
        this.expr(s.test);
        this.stmt(s.body);
        break;
      case 'LabeledStatement':
        this.stmt(s.body);
        break;
      case 'SwitchStatement': {
        this.expr(s.discriminant);
        const saved = this.scope;
        this.scope = new Scope('block', saved, this.cur);
        for (const c of s.cases) declareLexicals(c.consequent, this.scope);
        for (const c of s.cases) {
          if (c.test) this.expr(c.test);
          for (const x of c.consequent) this.stmt(x);
        }
        this.scope = saved;
        break;
      }
      case 'TryStatement':
        this.stmt(s.block);
        if (s.handler) {
          const saved = this.scope;
          this.scope = new Scope('block', saved, this.cur);
          if (s.handler.param) {
            patternNames(s.handler.param, (n) => this.scope.declare(n, 'let'));
            this.pattern(s.handler.param, 'bind');
          }
          this.stmt(s.handler.body);
          this.scope = saved;
        }
        if (s.finalizer) this.stmt(s.finalizer);
        break;
      case 'WithStatement':
        this.expr(s.object);
        this.stmt(s.body);
        break;
      case 'ExportNamedDeclaration':
        if (s.declaration) this.stmt(s.declaration);
        else if (!s.source)
          for (const sp of s.specifiers) if (sp.local.type === 'Identifier') this.ref(sp.local.name, false);
        break;
      case 'ExportDefaultDeclaration': {
        const d = s.declaration;
        if (d.type === 'FunctionDeclaration') {
          this.func(d, 'function', d.id?.name ?? 'default', { selfVar: d.id?.name });
        } else if (d.type === 'ClassDeclaration') this.cls(d, { name: 'default' });
        else this.expr(d, { name: 'default' });
        break;
      }
      default:
        // Empty, Debugger, Break, Continue, Import, ExportAll: nothing to walk.
        break;
    }
  }

  private declarations(decl: N): void {
    for (const d of decl.declarations) {
      this.pattern(d.id, 'bind');
      if (!d.init) continue;
      if (d.id.type === 'Identifier') {
        this.expr(d.init, { name: d.id.name, selfVar: d.id.name });
        this.written(d.id.name, 1);
      } else {
        this.expr(d.init);
        patternNames(d.id, (n) => this.written(n, 1));
      }
    }
  }

  private written(name: string, n: number): void {
    const b = this.scope.lookup(name);
    if (b !== undefined) b.writes += n;
  }

  // ---- patterns ----

  private pattern(p: N, mode: 'bind' | 'param' | 'assign'): void {
    switch (p.type) {
      case 'Identifier':
        if (mode === 'assign') this.ref(p.name, true);
        else checkReserved(p.name);
        break;
      case 'ObjectPattern':
        for (const prop of p.properties) {
          if (prop.type === 'RestElement') this.pattern(prop.argument, mode);
          else {
            if (prop.computed) this.expr(prop.key);
            this.pattern(prop.value, mode);
          }
        }
        break;
      case 'ArrayPattern':
        for (const el of p.elements) if (el) this.pattern(el, mode);
        break;
      case 'RestElement':
        this.pattern(p.argument, mode);
        break;
      case 'AssignmentPattern':
        this.pattern(p.left, mode);
        this.expr(p.right, p.left.type === 'Identifier' ? { name: p.left.name } : undefined);
        break;
      default:
        this.expr(p); // a member expression as an assignment target
    }
  }

  // ---- expressions ----

  private expr(e: N, hint?: Hint, head?: number): void {
    switch (e.type) {
      case 'Identifier':
        this.ref(e.name, false);
        break;
      // The commonest node types first: a string switch is a chain of comparisons in the interpreter.
      case 'MemberExpression':
        this.expr(e.object);
        if (e.computed) this.expr(e.property);
        else if (e.property.type === 'PrivateIdentifier') this.markUp('usesPrivate');
        break;
      case 'CallExpression':
      case 'NewExpression':
        if (e.callee.type === 'Identifier' && e.callee.name === 'eval') {
          for (let f = this.cur; f !== null; f = f.parentFn) f.usesEval = true;
          for (const owner of this.paramOwners) owner.paramRefs?.add('eval');
        }
        this.expr(e.callee);
        if (isKeepNames(e)) {
          // esbuild's keep-names wrapper (tsx output): `const add = __name((a, b) => a + b, "add")`. The function
          // takes the name it would have had without the wrapper, so a .ts file names its functions as a .js does.
          // No SELF through it: what `__name` returns is up to whoever defined it.
          this.expr(e.arguments[0], { name: hint?.name ?? e.arguments[1].value }, head);
          this.expr(e.arguments[1]);
          break;
        }
        this.exprs(e.arguments);
        break;
      case 'Literal':
        break;
      case 'ThisExpression':
        this.markUp('usesThis');
        break;
      case 'Super':
        this.markUp('usesSuper');
        break;
      case 'PrivateIdentifier':
        this.markUp('usesPrivate');
        break;
      case 'MetaProperty':
        if (e.meta.name === 'new') this.markUp('usesNewTarget');
        break;
      case 'FunctionExpression': {
        const fname: string | undefined = e.id?.name;
        this.func(e, 'function', hint?.name ?? fname ?? null, {
          selfFname: fname,
          selfVar: fname === undefined ? hint?.selfVar : undefined,
          head,
        });
        break;
      }
      case 'ArrowFunctionExpression':
        this.func(e, 'arrow', hint?.name ?? null, { selfVar: hint?.selfVar, head });
        break;
      case 'ClassExpression':
        this.cls(e, hint);
        break;
      case 'ObjectExpression':
        this.obj(e, hint);
        break;
      case 'ArrayExpression':
        for (const el of e.elements) if (el) this.expr(el);
        break;
      case 'SpreadElement':
      case 'UnaryExpression':
      case 'AwaitExpression':
        this.expr(e.argument);
        break;
      case 'YieldExpression':
        if (e.argument) this.expr(e.argument);
        break;
      case 'UpdateExpression':
        if (e.argument.type === 'Identifier') this.ref(e.argument.name, true);
        else this.expr(e.argument);
        break;
      case 'BinaryExpression':
      case 'LogicalExpression':
        this.expr(e.left);
        this.expr(e.right);
        break;
      case 'AssignmentExpression': {
        if (e.left.type === 'Identifier') this.ref(e.left.name, true);
        else this.pattern(e.left, 'assign');
        const name = targetName(e.left);
        this.expr(e.right, name === undefined ? undefined : { name });
        break;
      }
      case 'ConditionalExpression':
        this.expr(e.test);
        this.expr(e.consequent);
        this.expr(e.alternate);
        break;
      case 'SequenceExpression':
        for (const x of e.expressions) this.expr(x);
        break;
      case 'TemplateLiteral':
        for (const x of e.expressions) this.expr(x);
        break;
      case 'TaggedTemplateExpression':
        this.expr(e.tag);
        this.expr(e.quasi);
        break;
      case 'ChainExpression':
      case 'ParenthesizedExpression':
        this.expr(e.expression, hint, head);
        break;
      case 'ImportExpression':
        this.expr(e.source);
        if (e.options) this.expr(e.options);
        break;
      default:
        break;
    }
  }
}

/** `__name(<function or class>, "<name>")`, esbuild's keep-names helper. */
function isKeepNames(call: N): boolean {
  if (call.type !== 'CallExpression' || call.callee.type !== 'Identifier' || call.callee.name !== '__name')
    return false;
  const [target, name] = call.arguments;
  return (
    call.arguments.length === 2 &&
    (target.type === 'ArrowFunctionExpression' ||
      target.type === 'FunctionExpression' ||
      target.type === 'ClassExpression') &&
    name.type === 'Literal' &&
    typeof name.value === 'string'
  );
}

/** How SELF reaches a class member: `.total` / `["a-b"]` / `[Symbol.iterator]`, and the key as an expression. */
function selfAccess(m: N, part: string): { member: string; key: string } | undefined {
  if (m.key.type === 'PrivateIdentifier' || part.startsWith('.<computed>')) return undefined;
  if (part.startsWith('.')) return { member: part, key: JSON.stringify(part.slice(1)) };
  return { member: part, key: part.slice(1, -1) };
}
