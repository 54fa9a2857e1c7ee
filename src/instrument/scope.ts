// The instrumenter's scope model: bindings per scope and the hoisting pre-scan that declares them on scope entry.
//
// Declarations are hoisted when a scope is entered (lexical ones of that block, `var`s of the whole function body),
// so that every identifier can be resolved the moment the walker meets it: one walk, no list of references kept.

export type BindingKind =
  'var' | 'let' | 'const' | 'function' | 'class' | 'param' | 'import' | 'fname' | 'cname';

/** Thrown when a module declares or uses an identifier starting with `__lp$` (reserved by the slot ABI). */
export class ReservedName extends Error {
  constructor(readonly identifier: string) {
    super(`identifier '${identifier}' is reserved for livepatch`);
  }
}

export function checkReserved(name: string): void {
  if (name.charCodeAt(0) === 95 && name.startsWith('__lp$')) throw new ReservedName(name);
}

export type ScopeKind = 'module' | 'function' | 'block' | 'fname' | 'cname';

export interface Binding {
  name: string;
  kind: BindingKind;
  scope: Scope;
  /** Writes seen: assignments, updates, declarator initializers, function declarations of this name. */
  writes: number;
  /** Referred to from a function other than the one declaring it, so V8 keeps it in a context already. */
  captured: boolean;
}

/** The smallest piece of a function the scope model needs; the walker's FuncInfo extends it. */
export interface ScopeOwner {
  parentFn: ScopeOwner | null;
  isArrow: boolean;
}

export class Scope {
  readonly names = new Map<string, Binding>();
  /** Names declared by the function's body (not its parameters); only kept for function scopes. */
  bodyNames: Set<string> | undefined;
  /** Some binding of this scope is captured by a closure, so V8 gives the scope a heap context anyway. */
  hasCaptured = false;

  constructor(
    readonly kind: ScopeKind,
    readonly parent: Scope | null,
    /** The innermost function this scope belongs to (for a function scope: that function); null at module level. */
    readonly fn: ScopeOwner | null,
  ) {}

  declare(name: string, kind: BindingKind): Binding {
    checkReserved(name);
    let b = this.names.get(name);
    if (b === undefined) {
      b = { name, kind, scope: this, writes: 0, captured: false };
      this.names.set(name, b);
    } else if (kind === 'function' || kind === 'let' || kind === 'const' || kind === 'class') {
      // A later function declaration replaces a `var` or parameter of the same name at instantiation.
      if (b.kind === 'var') b.kind = kind;
    }
    if (kind === 'function') b.writes++;
    if (this.bodyNames !== undefined && kind !== 'param') this.bodyNames.add(name);
    return b;
  }

  /** Finds the binding `name` refers to from this scope, or undefined for a global. */
  lookup(name: string): Binding | undefined {
    for (let s: Scope | null = this; s !== null; s = s.parent) {
      const b = s.names.get(name);
      if (b !== undefined) return b;
    }
    return undefined;
  }
}

type N = any;

/** Calls `fn` for every name a binding pattern declares. */
export function patternNames(p: N, fn: (name: string, id: N) => void): void {
  switch (p.type) {
    case 'Identifier':
      fn(p.name, p);
      break;
    case 'ObjectPattern':
      for (const prop of p.properties)
        patternNames(prop.type === 'RestElement' ? prop.argument : prop.value, fn);
      break;
    case 'ArrayPattern':
      for (const el of p.elements) if (el) patternNames(el, fn);
      break;
    case 'RestElement':
      patternNames(p.argument, fn);
      break;
    case 'AssignmentPattern':
      patternNames(p.left, fn);
      break;
  }
}

/** Declares every name a binding pattern declares (patternNames without a closure per declaration). */
function declarePattern(p: N, scope: Scope, kind: BindingKind): void {
  switch (p.type) {
    case 'Identifier':
      scope.declare(p.name, kind);
      break;
    case 'ObjectPattern':
      for (const prop of p.properties)
        declarePattern(prop.type === 'RestElement' ? prop.argument : prop.value, scope, kind);
      break;
    case 'ArrayPattern':
      for (const el of p.elements) if (el) declarePattern(el, scope, kind);
      break;
    case 'RestElement':
      declarePattern(p.argument, scope, kind);
      break;
    case 'AssignmentPattern':
      declarePattern(p.left, scope, kind);
      break;
  }
}

/**
 * Declares what a statement list declares: its lexical declarations in `block`, and every `var` of the list,
 * however deeply nested in blocks, in `varScope`. Called once when a function body, block or module is entered.
 */
export function hoistStatements(stmts: N[], block: Scope, varScope: Scope): void {
  for (const s of stmts) {
    declareLexical(s, block);
    hoistVars(s, varScope);
  }
}

/** Declares the lexical declarations of a block's statements (its `var`s were hoisted with the function). */
export function declareLexicals(stmts: N[], scope: Scope): void {
  for (const s of stmts) declareLexical(s, scope);
}

/** True when a block's statements declare something of their own (let, const, class, function). */
export function hasLexicals(stmts: N[]): boolean {
  for (let k = 0; k < stmts.length; k++) {
    const type: string = stmts[k].type;
    if (type === 'FunctionDeclaration' || type === 'ClassDeclaration') return true;
    if (type === 'VariableDeclaration' && stmts[k].kind !== 'var') return true;
  }
  return false;
}

function declareLexical(s: N, scope: Scope): void {
  const type: string = s.type;
  // Most statements declare nothing: out before the switch's chain of comparisons (this runs cold, interpreted).
  if (type === 'ExpressionStatement' || type === 'ReturnStatement' || type === 'IfStatement') return;
  switch (type) {
    case 'VariableDeclaration':
      if (s.kind !== 'var') {
        const kind = s.kind === 'const' ? 'const' : 'let';
        for (const d of s.declarations) declarePattern(d.id, scope, kind);
      }
      break;
    case 'FunctionDeclaration':
      if (s.id) scope.declare(s.id.name, 'function');
      break;
    case 'ClassDeclaration':
      if (s.id) scope.declare(s.id.name, 'class');
      break;
    case 'ImportDeclaration':
      for (const sp of s.specifiers) scope.declare(sp.local.name, 'import');
      break;
    case 'ExportNamedDeclaration':
    case 'ExportDefaultDeclaration':
      if (s.declaration) declareLexical(s.declaration, scope);
      break;
  }
}

function hoistVars(s: N, scope: Scope): void {
  const type: string = s.type;
  if (type === 'ExpressionStatement' || type === 'ReturnStatement') return;
  switch (type) {
    case 'VariableDeclaration':
      if (s.kind === 'var') for (const d of s.declarations) declarePattern(d.id, scope, 'var');
      break;
    case 'ExportNamedDeclaration':
      if (s.declaration) hoistVars(s.declaration, scope);
      break;
    case 'BlockStatement':
    case 'StaticBlock':
      for (const x of s.body) hoistVars(x, scope);
      break;
    case 'IfStatement':
      hoistVars(s.consequent, scope);
      if (s.alternate) hoistVars(s.alternate, scope);
      break;
    case 'ForStatement':
      if (s.init && s.init.type === 'VariableDeclaration') hoistVars(s.init, scope);
      hoistVars(s.body, scope);
      break;
    case 'ForInStatement':
    case 'ForOfStatement':
      hoistVars(s.left, scope);
      hoistVars(s.body, scope);
      break;
    case 'WhileStatement':
    case 'DoWhileStatement':
    case 'LabeledStatement':
    case 'WithStatement':
      hoistVars(s.body, scope);
      break;
    case 'TryStatement':
      hoistVars(s.block, scope);
      if (s.handler) hoistVars(s.handler.body, scope);
      if (s.finalizer) hoistVars(s.finalizer, scope);
      break;
    case 'SwitchStatement':
      for (const c of s.cases) for (const x of c.consequent) hoistVars(x, scope);
      break;
  }
}
