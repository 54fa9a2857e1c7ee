// How a call is redirected: one func stack per (module instance, function) and its dispatcher, the
// counterpart of klp_ops and klp_ftrace_handler. The dispatcher is the only hot path of the runtime.
import { LivepatchError } from '../errors.js';
import type { FuncSymbol } from '../instrument/types.js';
import type { ModuleInstance } from './registry.js';
import type { AnyFunction, FuncSpec, ReplacementContext } from './spec.js';
import { UNPATCHED, type TaskTable } from './tasks.js';

/** A klp_func: one function of one patch object (a nop when `spec` is undefined). */
export interface Func {
  readonly name: string;
  /** As given: 0 means "must be unique". Shown as 1 when 0. */
  readonly sympos: number;
  readonly spec: FuncSpec | undefined;
  /** Set while the patch of this func is in transition: the task's universe picks the entry. */
  transition: boolean;
}

/** One func resolved against one module instance: what the stack holds. */
export interface Entry {
  readonly func: Func;
  /** The function to run; undefined for a nop ("run the original code"). */
  readonly fn: AnyFunction | undefined;
  readonly ops: Ops;
}

/** klp_ops: the stack of entries for one function of one module instance, newest first. */
export interface Ops {
  readonly inst: ModuleInstance;
  readonly sym: FuncSymbol;
  /** `module:name` as shown in stalled-task reports. */
  readonly label: string;
  readonly stack: Entry[];
  /** One-shot: the next entry runs the original body (set by `original`, consumed at the prologue). */
  bypass: boolean;
  /**
   * SELF and SCOPE of the latest call that was redirected (for ctx.original and ctx.scope()); in a WeakRef for an
   * instance the app may drop (registry.ts), since either keeps the module's scope alive. Read them with `last`.
   */
  self: AnyFunction | WeakRef<AnyFunction> | undefined;
  scope: (() => Record<string, unknown>) | WeakRef<() => Record<string, unknown>> | undefined;
  readonly dispatch: (
    self: AnyFunction | undefined,
    scope: (() => Record<string, unknown>) | undefined,
  ) => AnyFunction | undefined;
}

const opsByInstance = new WeakMap<ModuleInstance, Map<number, Ops>>();

function getOps(inst: ModuleInstance, sym: FuncSymbol, tasks: TaskTable): Ops {
  let byIndex = opsByInstance.get(inst);
  if (byIndex === undefined) opsByInstance.set(inst, (byIndex = new Map()));
  let ops = byIndex.get(sym.index);
  if (ops !== undefined) return ops;
  const stack: Entry[] = [];
  const weak = inst.weak === true;
  const o: Ops = {
    inst,
    sym,
    label: `${inst.id}:${sym.name}`,
    stack,
    bypass: false,
    self: undefined,
    scope: undefined,
    // Mirrors klp_ftrace_handler: outside a transition, the top entry; during one, a task still in the
    // unpatched universe takes the entry below the top (or the original). Never throws.
    dispatch(self, scope) {
      if (o.bypass) {
        o.bypass = false;
        return undefined;
      }
      let e = stack[0];
      if (e === undefined) return undefined;
      if (e.func.transition && tasks.universeOf(o.label) === UNPATCHED) {
        e = stack[1];
        if (e === undefined) return undefined;
      }
      if (e.fn === undefined) return undefined;
      if (weak) {
        if (self !== undefined && last(o.self) !== self) o.self = new WeakRef(self);
        o.scope = scope === undefined ? undefined : new WeakRef(scope);
      } else {
        o.self = self;
        o.scope = scope;
      }
      return e.fn;
    },
  };
  byIndex.set(sym.index, (ops = o));
  return ops;
}

/** SELF or SCOPE as the dispatcher kept it. */
function last<T extends object>(kept: T | WeakRef<T> | undefined): T | undefined {
  return kept instanceof WeakRef ? kept.deref() : kept;
}

/** Finds a function by name and sympos in an instance's symbol table, with the kernel's errors. */
export function findSymbol(inst: ModuleInstance, name: string, sympos: number): FuncSymbol {
  const table = inst.symbols();
  const matches = table.funcs.filter((f) => f.name === name);
  if (matches.length === 0) {
    const refused = table.unpatchable.find((u) => u.name === name);
    if (refused !== undefined)
      throw new LivepatchError(
        'EINVAL',
        `function '${name}' in module '${inst.id}' cannot be patched: ${refused.reason}`,
        {
          module: inst.id,
          func: name,
          reason: refused.reason,
        },
      );
    throw new LivepatchError('ENOENT', `symbol '${name}' not found in symbol table of module '${inst.id}'`, {
      module: inst.id,
      func: name,
    });
  }
  if (sympos === 0) {
    if (matches.length > 1)
      throw new LivepatchError(
        'EINVAL',
        `unresolvable ambiguity for symbol '${name}' in object '${inst.id}'`,
        {
          module: inst.id,
          func: name,
          count: matches.length,
        },
      );
    return matches[0]!;
  }
  const m = matches.find((f) => f.sympos === sympos);
  if (m === undefined)
    throw new LivepatchError(
      'EINVAL',
      `symbol position ${sympos} for symbol '${name}' in object '${inst.id}' not found`,
      {
        module: inst.id,
        func: name,
        sympos,
      },
    );
  return m;
}

/**
 * Resolves a func against one module instance: finds the symbol and builds the function to run (calling a
 * factory once for this instance). Changes nothing visible; throws LivepatchError.
 */
export function resolveEntry(func: Func, inst: ModuleInstance, tasks: TaskTable): Entry {
  const sym = findSymbol(inst, func.name, func.sympos);
  const ops = getOps(inst, sym, tasks);
  const spec = func.spec;
  if (spec === undefined) return { func, fn: undefined, ops };
  if (spec.replacement !== undefined) return { func, fn: spec.replacement, ops };
  const ctx = makeContext(ops);
  let fn: unknown;
  try {
    fn = spec.factory!(ctx);
  } catch (e) {
    if (e instanceof LivepatchError) throw e;
    throw new LivepatchError(
      'EINVAL',
      `factory of '${func.name}' for module '${inst.id}' failed: ${(e as Error)?.message ?? String(e)}`,
      { module: inst.id, func: func.name },
      { cause: e },
    );
  }
  if (typeof fn !== 'function')
    throw new LivepatchError(
      'EINVAL',
      `factory of '${func.name}' for module '${inst.id}' did not return a function`,
      { module: inst.id, func: func.name },
    );
  return { func, fn: fn as AnyFunction, ops };
}

function makeContext(ops: Ops): ReplacementContext {
  const { inst, sym } = ops;
  let original: AnyFunction | undefined;
  return {
    bindings: inst.bindings,
    module: inst.id,
    file: inst.file,
    // A getter, so that a factory that never uses `original` works for a function that has no SELF.
    get original(): AnyFunction {
      if (!sym.self)
        throw new LivepatchError(
          'EINVAL',
          `'original' is not available for '${sym.name}' in module '${inst.id}': the instrumenter cannot name this function from inside itself`,
          { module: inst.id, func: sym.name },
        );
      return (original ??= makeOriginal(ops));
    },
    scope(): Record<string, unknown> {
      const s = last(ops.scope);
      if (s === undefined)
        throw new LivepatchError(
          'EINVAL',
          `'scope' is not available for '${sym.name}' in module '${inst.id}': it captures no variables of an enclosing function`,
          { module: inst.id, func: sym.name },
        );
      return s();
    },
  };
}

function makeOriginal(ops: Ops): AnyFunction {
  const selfOf = (): AnyFunction => {
    const self = last(ops.self);
    if (self === undefined)
      throw new LivepatchError(
        'EINVAL',
        `'original' of '${ops.sym.name}' in module '${ops.inst.id}' called before the function was ever redirected`,
      );
    return self;
  };
  if (ops.sym.generator) {
    // The prologue of a generator runs at its first next(): arm the bypass exactly then.
    if (ops.sym.async)
      return function (this: unknown, ...args: unknown[]) {
        const it = selfOf().apply(this, args) as AsyncIterable<unknown>;
        return (async function* () {
          ops.bypass = true;
          return yield* it;
        })();
      };
    return function (this: unknown, ...args: unknown[]) {
      const it = selfOf().apply(this, args) as Iterable<unknown>;
      return (function* () {
        ops.bypass = true;
        return yield* it;
      })();
    };
  }
  if (ops.sym.kind === 'constructor')
    return function original(this: unknown, ...args: unknown[]) {
      const self = selfOf();
      ops.bypass = true;
      try {
        // `new ctx.original(...)` constructs the class itself; Reflect.construct(ctx.original, args, new.target)
        // from a replacement keeps the subclass being constructed.
        return Reflect.construct(
          self,
          args,
          new.target === undefined || new.target === original ? self : new.target,
        ) as unknown;
      } finally {
        ops.bypass = false;
      }
    };
  return function (this: unknown, ...args: unknown[]) {
    const self = selfOf();
    ops.bypass = true;
    try {
      return self.apply(this, args) as unknown;
    } finally {
      // Normally consumed by the prologue already; never leave it armed if the body did not start.
      ops.bypass = false;
    }
  };
}

/** Pushes an entry on its stack (newest first); the first entry turns the function's flag on. */
export function pushEntry(e: Entry): void {
  const { ops } = e;
  ops.stack.unshift(e);
  if (ops.stack.length === 1) {
    const n = ops.sym.index;
    ops.inst.slots[`r${n}`] = ops.dispatch;
    ops.inst.slots[`f${n}`] = true;
  }
}

/** Removes an entry from wherever it is on its stack; the last one turns the flag back off. */
export function removeEntry(e: Entry): void {
  const { ops } = e;
  const i = ops.stack.indexOf(e);
  if (i < 0) return;
  ops.stack.splice(i, 1);
  if (ops.stack.length === 0) {
    const n = ops.sym.index;
    ops.inst.slots[`f${n}`] = false;
    ops.inst.slots[`r${n}`] = undefined;
    ops.self = undefined;
    ops.scope = undefined;
  }
}
