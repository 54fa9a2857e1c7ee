// What goes into the patch for one module: each changed function rewritten to reach the running module's state
// (ctx.bindings, ctx.scope()), plus the new helpers and moved constants it needs — or a refusal saying why not.
import { forEachChild, type N } from './ast.js';
import { excerpt, refusal, type FuncDiff, type ModuleDiff, type Refusal } from './module-diff.js';
import { applyEdits, BINDINGS, CTX, Rewirer, SCOPE, type Edit } from './rewire.js';

export interface PlannedFunc {
  name: string;
  sympos: number;
  why: string;
  /** An expression evaluating to the replacement, valid inside the factory. */
  text: string;
  /** Shared names (helpers, moved constants) this replacement uses. */
  needs: string[];
}

export interface SharedItem {
  name: string;
  kind: 'constant' | 'helper';
  /** A statement declaring `name`, valid inside the per-module shared scope. */
  text: string;
  start: number;
}

export interface ModulePlan {
  funcs: PlannedFunc[];
  /** Names of new nested functions carried inside a replacement. */
  inlined: string[];
  shared: SharedItem[];
  refusals: Refusal[];
  notes: string[];
}

const IDENT = /^[A-Za-z_$][\w$]*$/;
const RESERVED = new Set(
  'break case catch class const continue debugger default delete do else export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let static enum await implements package protected interface private public arguments eval'.split(
    ' ',
  ),
);

function safeName(symName: string): string {
  const last = (symName.split('>').pop() ?? '').split('.').pop() ?? '';
  const bare = last
    .replace(/^(get|set) /, '')
    .replace(/^#/, '')
    .replace(/\[\d+\]$/, '');
  return IDENT.test(bare) && !RESERVED.has(bare) ? bare : 'replacement';
}

/** Calls `fn` for nodes under `n` that belong to `n`'s own function context (not inside nested non-arrow functions). */
function ownNodes(n: N, fn: (x: N) => void, root = true): void {
  if (!root && (n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression')) return;
  fn(n);
  forEachChild(n, (c) => ownNodes(c, fn, false));
}

/** Methods of String and Array.prototype that call a function argument before they return and keep no reference. */
const SYNC_CALLBACKS = new Set([
  'replace',
  'replaceAll',
  'map',
  'forEach',
  'filter',
  'some',
  'every',
  'find',
  'findIndex',
  'findLast',
  'findLastIndex',
  'reduce',
  'reduceRight',
  'flatMap',
  'sort',
]);

function anyNode(n: N, pred: (x: N) => boolean): N | undefined {
  if (pred(n)) return n;
  let found: N | undefined;
  forEachChild(n, (c) => {
    if (!found) found = anyNode(c, pred);
  });
  return found;
}

/** How many arguments the running function's prologue passes on (docs/internals/abi.md §2, FORWARD). */
function forwarded(f: FuncDiff): number {
  const o = f.old;
  if (!o) return Infinity;
  if (o.sym.kind === 'constructor' || o.sym.usesArguments) return Infinity;
  const params = o.node.params as N[];
  if (params.some((p) => p.type === 'RestElement')) return Infinity;
  if (o.node.type !== 'ArrowFunctionExpression' && !params.every((p) => p.type === 'Identifier'))
    return Infinity;
  return params.length;
}

function needed(fn: N): number {
  const params = fn.params as N[];
  if (params.some((p) => p.type === 'RestElement')) return Infinity;
  if (fn.type !== 'ArrowFunctionExpression') {
    let uses = false;
    ownNodes(fn.body, (x) => {
      if (x.type === 'Identifier' && x.name === 'arguments') uses = true;
    });
    if (uses) return Infinity;
  }
  return params.length;
}

export function planModule(d: ModuleDiff): ModulePlan {
  return new Planner(d).run();
}
class Planner {
  private readonly plan: ModulePlan = { funcs: [], inlined: [], shared: [], refusals: [], notes: [] };
  private readonly wire: Rewirer;

  constructor(private readonly d: ModuleDiff) {
    this.wire = new Rewirer(d, this.plan.refusals);
  }

  run(): ModulePlan {
    for (const f of this.d.funcs)
      if (f.change === 'changed' && !f.loadTime) {
        const carrier = this.carrierOf(f);
        if (carrier === null) this.planFunc(f);
        else {
          f.why = `carried by patched '${carrier}'`;
          this.plan.notes.push(
            `'${f.name}' is not patched on its own: the patched '${carrier}' passes it to a built-in that calls it at once and keeps no reference, so its replacement makes the new callback`,
          );
        }
      }
    // Helpers and constants can need more of each other: close over them.
    const done = new Set<string>();
    for (let grew = true; grew;) {
      grew = false;
      for (const [name, at] of [...this.wire.sharedWanted]) {
        if (done.has(name)) continue;
        done.add(name);
        grew = true;
        this.planShared(name, at);
      }
    }
    this.plan.shared.sort((a, b) => a.start - b.start);
    for (const name of this.wire.globalNotes)
      this.plan.notes.push(
        `patched code reads '${name}' as the global: the running code's '${name}' is the same object, taken from its context at load`,
      );
    return this.plan;
  }

  /**
   * The running name of the changed function that makes nested `f` as a callback it hands straight to a built-in
   * that runs it synchronously and drops it (`s.replace(re, function … {})`, `xs.map(x => …)`), or null. Such a
   * closure lives only while its maker runs, so once the maker is patched, every callback made from then on is
   * new code, and `f` needs no slot of its own — which matters when it reads new variables of its maker
   * (path-to-regexp 0.1.10) that the running closure does not capture.
   */
  private carrierOf(f: FuncDiff): string | null {
    if (!f.new) return null;
    const node = f.new.node;
    // The innermost function around it (names cannot be split on '>': '<anonymous>' holds one).
    let parent: FuncDiff | undefined;
    for (const p of this.d.funcs)
      if (
        p.new &&
        p.new.node.start < node.start &&
        node.end <= p.new.node.end &&
        (!parent?.new || p.new.node.start > parent.new.node.start)
      )
        parent = p;
    if (!parent?.new || parent.change !== 'changed' || parent.loadTime) return null;
    const call = anyNode(
      parent.new.node,
      (x) =>
        x.type === 'CallExpression' &&
        x.callee.type === 'MemberExpression' &&
        !x.callee.computed &&
        SYNC_CALLBACKS.has(String(x.callee.property.name)) &&
        (x.arguments as N[]).includes(node),
    );
    return call ? parent.name : null;
  }

  private refuse(node: N | number, construct: string, remedy: string, old = false): void {
    this.plan.refusals.push(refusal(old ? this.d.old : this.d.new, node, construct, remedy));
  }

  private planFunc(f: FuncDiff): void {
    const nf = f.new;
    const of = f.old;
    if (!nf || !of) return;
    const fn = nf.node;
    const who = f.name;
    const kind = of.sym.kind;
    const before = this.plan.refusals.length;
    const priv = anyNode(fn, (x) => x.type === 'PrivateIdentifier');
    if (priv)
      this.refuse(
        priv,
        `patched '${who}' uses private member '#${String(priv.name)}'`,
        'a patch is outside the class and cannot reach #private members: patch a public method that calls a helper, or make the member non-private in the next release and restart',
      );
    const meta = anyNode(fn, (x) => x.type === 'MetaProperty' && x.meta.name === 'import');
    if (meta)
      this.refuse(
        meta,
        `patched '${who}' uses 'import.meta'`,
        'in a patch it would describe the patch, not the module: keep the value in a module-level binding of the running version (const here = import.meta.url) and read that',
      );
    const dyn = anyNode(
      fn,
      (x) =>
        x.type === 'ImportExpression' &&
        !(x.source.type === 'Literal' && String(x.source.value).startsWith('node:')),
    );
    if (dyn)
      this.refuse(
        dyn,
        `patched '${who}' calls import() of '${dyn.source.type === 'Literal' ? String(dyn.source.value) : '…'}'`,
        "a patch resolves import() from its own location, not the module's: use what the module already imports (through its bindings), createRequire(ctx.bindings …), or a 'node:' builtin",
      );
    const evalCall = anyNode(
      fn,
      (x) => x.type === 'CallExpression' && x.callee.type === 'Identifier' && x.callee.name === 'eval',
    );
    if (evalCall)
      this.refuse(
        evalCall,
        `patched '${who}' calls 'eval'`,
        "direct eval in a replacement sees the patch's scope, not the module's: write the replacement by hand",
      );
    if (!this.isStrict(fn)) {
      // A patch is an ES module, so its code is strict: assigning an undeclared name throws there.
      const sloppy = this.wire
        .refsIn(fn.start, fn.end)
        .find(([id, scope]) => scope === null && this.d.scopes.writes.has(id));
      if (sloppy)
        this.refuse(
          sloppy[0],
          `patched '${who}' assigns undeclared '${String(sloppy[0].name)}' (sloppy mode)`,
          `a patch runs in strict mode, where that throws: write globalThis.${String(sloppy[0].name)} = … instead`,
        );
    }
    const isCtor = kind === 'constructor' || nf.sym.kind === 'constructor';
    const ctorClass = isCtor && nf.member ? this.classOf(nf.member) : null;
    if (isCtor && ctorClass === null)
      this.refuse(
        fn,
        `changed constructor of '${who}', a class not bound at module level`,
        'move the changed code into a method or helper the constructor calls, and patch that',
      );
    let usesSuper = false;
    ownNodes(fn, (x) => {
      if (x.type === 'Super') usesSuper = true;
    });
    if (fn.type === 'ArrowFunctionExpression') {
      let lexical: string | undefined;
      ownNodes(fn.body, (x) => {
        if (x.type === 'Identifier' && x.name === 'arguments') lexical = "'arguments'";
        if (x.type === 'MetaProperty') lexical = "'new.target'";
        if (x.type === 'Super') lexical = "'super'";
      });
      if (lexical)
        this.refuse(
          fn,
          `patched arrow '${who}' uses ${lexical} of its enclosing function`,
          'patch the enclosing function instead, or pass the value in as a parameter',
        );
    }
    const give = forwarded(f);
    const want = needed(fn);
    if (want > give)
      this.refuse(
        fn,
        `patched '${who}' now takes ${want === Infinity ? 'any number of' : want} arguments but the running function passes on only ${give}`,
        'keep the parameter list of the running function (add new values through an options object or a shadow variable), or patch its callers',
      );
    const member = nf.member;
    const isMethod =
      member !== null &&
      (member.type === 'MethodDefinition' ||
        (member.type === 'Property' && (member.method || member.kind !== 'init')));
    let home: string | null = null;
    if (usesSuper && fn.type !== 'ArrowFunctionExpression') {
      const cls = member?.type === 'MethodDefinition' ? this.classOf(member) : null;
      if (!cls)
        this.refuse(
          fn,
          `patched '${who}' uses 'super' outside a module-level class`,
          'call the base method through a module binding (Base.prototype.m.call(this, …)) in the new code, or write the replacement by hand',
        );
      else
        home = member?.static
          ? `Object.getPrototypeOf(${BINDINGS}.${cls})`
          : `Object.getPrototypeOf(${BINDINGS}.${cls}.prototype)`;
    }
    const selfId = fn.type === 'FunctionDeclaration' ? (fn.id as N) : null;
    const enclosing = of.sym.parent >= 0 ? of.sym.scope : null;
    const wired = this.wire.rewire(who, fn.start, fn.end, enclosing, selfId);
    if (!wired || this.plan.refusals.length > before) return;
    const src = this.d.new.source;
    // New functions declared beside this one that it calls: defined at the start of the replacement's body.
    const inlined: string[] = [];
    const constants: { start: number; text: string }[] = [];
    const pending = [...wired.nested];
    const seen = new Set<N>();
    while (pending.length > 0) {
      const h = pending.shift() as N;
      if (seen.has(h)) continue;
      seen.add(h);
      const w = this.wire.rewire(who, h.start, h.end, enclosing, h.id as N);
      if (!w) return;
      pending.push(...w.nested);
      for (const n of w.needs) wired.needs.add(n);
      for (const n of w.kept) wired.kept.add(n);
      if (w.usesScope) wired.usesScope = true;
      const text = applyEdits(src, h.start, h.end, w.edits);
      if (h.type === 'VariableDeclarator') constants.push({ start: h.start, text: `const ${text};` });
      else inlined.push(text);
      this.plan.inlined.push(String(h.id.name));
    }
    // Constants first, in source order: functions are hoisted, a const is not.
    constants.sort((a, b) => a.start - b.start);
    inlined.unshift(...constants.map((c) => c.text));
    const paramsEnd = fn.body.start;
    if (wired.scopeAt.some((p) => p < paramsEnd))
      return this.refuse(
        fn,
        `patched '${who}' reads enclosing variables in its parameter defaults`,
        'read them in the body instead',
      );
    let name = safeName(nf.sym.name);
    if (!selfId && (wired.kept.has(name) || wired.needs.has(name))) name = 'replacement';
    if (selfId) name = selfId.name;
    const edits = wired.edits;
    const prelude = `${wired.usesScope ? `const ${SCOPE} = ${CTX}.scope(); ` : ''}${inlined.map((t) => `${t} `).join('')}`;
    let text: string;
    if (fn.type === 'ArrowFunctionExpression') {
      // An arrow becomes a function: the prologue forwards the arrow's own `this` with call(), which an arrow
      // replacement would ignore.
      const params = fn.params as N[];
      const ptext = params.length
        ? applyEdits(src, (params[0] as N).start, (params[params.length - 1] as N).end, edits)
        : '';
      const body =
        fn.body.type === 'BlockStatement'
          ? this.withPrelude(fn.body, edits, prelude)
          : `{ ${prelude}return (${applyEdits(src, fn.body.start, fn.body.end, edits)}); }`;
      text = `${fn.async ? 'async ' : ''}function ${name}(${ptext}) ${body}`;
    } else {
      const body = this.withPrelude(fn.body, edits, prelude);
      const head = applyEdits(src, fn.start, fn.body.start, edits);
      if (ctorClass !== null) {
        text = this.constructorClass(ctorClass, `constructor${head}${body}`, wired.needs);
        if (text === '') return;
      } else if (isMethod) {
        const star = fn.generator ? '*' : '';
        const async = fn.async ? 'async ' : '';
        const mkind = member?.kind === 'get' || member?.kind === 'set' ? `${String(member.kind)} ` : '';
        if (home !== null) {
          const lit = `{ __proto__: ${home}, ${mkind}${async}${star}${name}${head}${body} }`;
          text = mkind
            ? `Object.getOwnPropertyDescriptor(${lit}, '${name}').${mkind.trim()}`
            : `(${lit}).${name}`;
        } else text = `${async}function${star} ${name}${head}${body}`;
      } else {
        // A declaration or expression keeps its own head; an anonymous one is given a name.
        text = fn.id
          ? `${head}${body}`
          : `${head.replace(/^(async\s+)?function\s*(\*?)\s*/, (_m, a?: string, st?: string) => `${a ?? ''}function${st ?? ''} ${name}`)}${body}`;
      }
    }
    this.plan.funcs.push({
      name: f.name,
      sympos: f.sympos,
      why: f.why ?? 'changed',
      text,
      needs: [...wired.needs],
    });
  }

  private withPrelude(body: N, edits: Edit[], prelude: string): string {
    if (!prelude) return applyEdits(this.d.new.source, body.start, body.end, edits);
    // After the directive prologue: a 'use strict' moved behind a statement would stop being a directive.
    const stmts = body.body as N[];
    let at = body.start + 1;
    for (const st of stmts) {
      if (st.directive === undefined) break;
      at = st.end;
    }
    return applyEdits(this.d.new.source, body.start, body.end, [
      ...edits,
      { start: at, end: at, text: ` ${prelude}` },
    ]);
  }

  /** True when `fn` is strict-mode code already: an ES module, a class body, or under a 'use strict' directive. */
  private isStrict(fn: N): boolean {
    if (this.d.new.format === 'module') return true;
    const directive = (body: N[]): boolean => {
      for (const st of body) {
        if (st.directive === undefined) return false;
        if (st.directive === 'use strict') return true;
      }
      return false;
    };
    if (directive(this.d.new.ast.body as N[])) return true;
    for (const f of this.d.new.funcs) {
      if (f.node.start > fn.start || f.node.end < fn.end) continue;
      if (f.member && f.member.type !== 'Property') return true;
      if (f.node.body.type === 'BlockStatement' && directive(f.node.body.body as N[])) return true;
    }
    return false;
  }

  /**
   * A constructor's replacement is a class: the running constructor forwards with Reflect.construct(replacement,
   * arguments, new.target), so the object is made from the running class's prototype. The replacement extends the
   * running class's parent (so `super()` reaches it) and repeats the instance fields (class shape checks keep
   * them unchanged), which the bypassed original would otherwise have initialised.
   */
  private constructorClass(cls: string, ctorText: string, needs: Set<string>): string {
    const b = this.d.new.top.bindings.get(cls);
    const node = b?.init as N;
    const fields: string[] = [];
    for (const m of node.body.body as N[]) {
      if (m.type !== 'PropertyDefinition' || m.static) continue;
      const w = this.wire.rewire(cls, m.start, m.end, null, null);
      if (!w) return '';
      for (const n of w.needs) needs.add(n);
      fields.push(applyEdits(this.d.new.source, m.start, m.end, w.edits).replace(/;?$/, ';'));
    }
    const heritage = node.superClass ? ` extends Object.getPrototypeOf(${BINDINGS}.${cls})` : '';
    return `class ${cls}${heritage} { ${fields.join(' ')} ${ctorText} }`;
  }

  /** The module-level binding name of the class holding method `member`, if the running module has it. */
  private classOf(member: N): string | null {
    for (const [name, b] of this.d.new.top.bindings)
      if (b.isClass && b.init && (b.init.body.body as N[]).includes(member) && this.wire.oldNames.has(name))
        return name;
    return null;
  }

  private planShared(name: string, at: N): void {
    const b = this.d.new.top.bindings.get(name);
    if (!b) return;
    const isConst = this.d.movedConstants.has(name) || (!b.isFunction && !b.isClass);
    const node = b.node; // the declaration, or the declarator of a const
    const wired = this.wire.rewire(name, node.start, node.end, null, null);
    if (!wired) return;
    for (const n of wired.needs) if (!this.wire.sharedWanted.has(n)) this.wire.sharedWanted.set(n, at);
    const text = applyEdits(this.d.new.source, node.start, node.end, wired.edits);
    this.plan.shared.push({
      name,
      kind: isConst ? 'constant' : 'helper',
      text: b.kind === 'function' || b.kind === 'class' ? text : `const ${text};`,
      start: node.start,
    });
    this.plan.notes.push(
      `${isConst ? 'constant' : 'helper'} '${name}' (${this.d.rel}:${this.d.new.lines.line(node.start)}) moves into the patch: ${excerpt(this.d.new, node)}`,
    );
  }
}
