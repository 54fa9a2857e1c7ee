// Conformance of instrumented CommonJS: unpatched it behaves exactly like the original; patched, every reference
// reaches the replacement, and SELF, SCOPE and bindings are what abi.md says.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../helpers.js';
import { fillSlot, loadFixture, slotOf, type Loaded } from './harness.js';

describe('instrument: CommonJS conformance (forms.cjs)', () => {
  let m: Loaded;
  const cleanups: (() => void)[] = [];
  before(async () => {
    m = await loadFixture('forms.cjs', (fn) => cleanups.push(fn));
  });
  after(() => cleanups.forEach((fn) => fn()));

  it('registers one module with a slot per instrumented function', () => {
    assert.equal(m.reg.abi, 3);
    assert.equal(m.reg.format, 'commonjs');
    assert.ok(m.table.funcs.length > 40, `only ${m.table.funcs.length} functions`);
    for (const f of m.table.funcs) {
      assert.equal(m.reg.slots[`f${f.index}`], false);
      assert.equal(m.reg.slots[`r${f.index}`], undefined);
    }
    assert.deepEqual(
      m.table.unpatchable.map((u) => [u.name, u.reason]),
      [
        ['defaulted', 'arrow with functions in its destructured or default parameters'],
        ['hidden', 'notrace'],
      ],
    );
  });

  it('unpatched, every observable behaves as the original (results, errors, this, arguments, shapes, stacks)', () => {
    const a = m.original.observe();
    const b = m.instrumented.observe();
    // The destructuring TypeError of a moved arrow parameter list words its message differently.
    delete a.destrBad.message;
    delete b.destrBad.message;
    for (const key of Object.keys(a)) assert.deepEqual(b[key], a[key], key);
    assert.ok(a.thrower.line > 0, 'stack lines are compared');
  });

  it('unpatched, async functions and generators keep their tick ordering', async () => {
    assert.deepEqual(await m.instrumented.observeAsync(), await m.original.observeAsync());
  });

  it('a parameter named `undefined` does not confuse the prologue', () => {
    let scopeArg: unknown = 'not called';
    let replace = true;
    const undo = fillSlot(m.reg, m.table, 'legacy', (_self, scope) => {
      scopeArg = scope;
      return replace ? () => 'patched' : undefined;
    });
    try {
      assert.equal(m.instrumented.legacy(1, 'x'), 'patched');
      assert.equal(scopeArg, undefined);
      replace = false;
      assert.deepEqual(m.instrumented.legacy(1, 'x'), ['number', 'string']);
    } finally {
      undo();
    }
    assert.deepEqual(m.instrumented.legacy(1, 'x'), ['number', 'string']);
  });

  it('a dispatcher returning undefined runs the original body', () => {
    let calls = 0;
    const undo = fillSlot(m.reg, m.table, 'greet', () => {
      calls++;
      return undefined;
    });
    try {
      assert.equal(m.instrumented.greet('bo'), 'hi bo');
      assert.equal(calls, 1);
    } finally {
      undo();
    }
  });

  it('patched, every kind of reference reaches the replacement', () => {
    const mod = m.instrumented;
    const captured = mod.greet;
    const callbacks = [mod.greet];
    const ee = new EventEmitter();
    const heard: string[] = [];
    ee.on('x', (v: string) => heard.push(mod.greet(v)));
    ee.on('y', mod.greet);
    const pulled = mod.Cart.prototype.total;
    const cart = new mod.Cart(1, 2, 3);
    const undoGreet = fillSlot(m.reg, m.table, 'greet', () => (name: string) => 'patched ' + name);
    const undoTotal = fillSlot(
      m.reg,
      m.table,
      'Cart.prototype.total',
      () =>
        function (this: { size: number }) {
          return this.size * 100;
        },
    );
    try {
      assert.equal(captured('a'), 'patched a');
      assert.equal(callbacks[0]('b'), 'patched b');
      ee.emit('x', 'c');
      assert.deepEqual(heard, ['patched c']);
      assert.equal((ee.listeners('y')[0] as (v: string) => string)('d'), 'patched d');
      assert.equal(mod.greet('e'), 'patched e');
      assert.equal(pulled.call(cart), 200);
      assert.equal(cart.total(), 200);
    } finally {
      undoGreet();
      undoTotal();
    }
    assert.equal(captured('a'), 'hi a');
    assert.equal(cart.total(), 5);
  });

  it('SELF is the function itself, through declarations, const, class members and constructors', () => {
    const mod = m.instrumented;
    const seen: unknown[] = [];
    const names = [
      'greet',
      'add',
      'Cart.prototype.total',
      'Cart.fromJSON',
      'Cart',
      'get Cart.prototype.size',
      'gen',
    ];
    const undos = names.map((n) =>
      fillSlot(m.reg, m.table, n, (self) => {
        seen.push(self);
        return undefined;
      }),
    );
    try {
      mod.greet('x');
      mod.add(1, 2);
      const c = new mod.Cart(1, 2);
      c.total();
      mod.Cart.fromJSON({ v: 1, items: [] });
      void c.size;
      mod.gen(1).next();
    } finally {
      for (const u of undos) u();
    }
    const sizeGetter = Object.getOwnPropertyDescriptor(mod.Cart.prototype, 'size')?.get;
    assert.deepEqual(seen, [
      mod.greet,
      mod.add,
      mod.Cart,
      mod.Cart.prototype.total,
      mod.Cart.fromJSON,
      mod.Cart,
      sizeGetter,
      mod.gen,
    ]);
    const selfless = m.table.funcs.find((f) => f.name === 'api.handlers.list');
    assert.equal(selfless?.self, false);
  });

  it('SCOPE reads and writes the variables a nested function captures, and only those', () => {
    const inc = m.table.funcs.find((f) => f.name === 'counter>inc');
    assert.deepEqual(inc?.scope, ['n', 'step']);
    let scope: Record<string, unknown> | undefined;
    let seenAtEntry: unknown[] = [];
    const k = m.instrumented.counter();
    k.inc();
    const undo = fillSlot(m.reg, m.table, 'counter>inc', (_self, s) => {
      scope = s?.();
      seenAtEntry = [scope?.n, scope?.step];
      return undefined;
    });
    try {
      k.inc();
    } finally {
      undo();
    }
    assert.ok(scope);
    assert.deepEqual(seenAtEntry, [1, 1], 'read at entry, before the original body ran');
    assert.equal(scope.n, 2, 'the accessors are live');
    scope.n = 40;
    assert.equal(k.get(), 40, 'written through the setter');
    assert.throws(() => {
      (scope as Record<string, unknown>).step = 2;
    }, TypeError);
  });

  it('bindings read and write module privates; const and class bindings have no setter', () => {
    const b = m.bindings;
    assert.equal(b.secret, 'module-private');
    b.secret = 'changed';
    assert.equal(m.instrumented.readSecret(), 'changed');
    assert.equal(b.greet, m.instrumented.greet);
    assert.equal(typeof b.require, 'function');
    assert.equal(b.module, (b.module as { exports: unknown }) && b.module);
    assert.equal(Object.getOwnPropertyDescriptor(b, 'add')?.set, undefined);
    assert.equal(Object.getOwnPropertyDescriptor(b, 'Cart')?.set, undefined);
    b.secret = 'module-private';
  });

  it('constructors forward with new.target; generators decide at the first next(); async adopts the promise', async () => {
    const mod = m.instrumented;
    const undoCtor = fillSlot(
      m.reg,
      m.table,
      'Ctor',
      () =>
        function (this: Record<string, unknown>, x: number) {
          this.x = x * 10;
        },
    );
    const undoGen = fillSlot(
      m.reg,
      m.table,
      'gen',
      () =>
        function* () {
          yield 'new';
          return 'done';
        },
    );
    const undoAf = fillSlot(m.reg, m.table, 'af', () => async (x: number) => x + 100);
    try {
      const o = new mod.Ctor(2);
      assert.equal(o.x, 20);
      assert.ok(o instanceof mod.Ctor, 'the instance has the prototype of new.target');
      assert.equal(o.get(), 20);
      const g = mod.gen(1);
      assert.deepEqual(
        [g.next(), g.next()],
        [
          { value: 'new', done: false },
          { value: 'done', done: true },
        ],
      );
      assert.equal(await mod.af(1), 101);
    } finally {
      undoCtor();
      undoGen();
      undoAf();
    }
    // The check runs at the first next(), not at the call: a generator made while patched runs the original
    // body if the patch is gone by its first next().
    const undo = fillSlot(
      m.reg,
      m.table,
      'gen',
      () =>
        function* () {
          yield 'new';
        },
    );
    const early = mod.gen(7);
    undo();
    assert.deepEqual(early.next(), { value: 7, done: false });
  });

  it('class constructors forward through Reflect.construct with new.target (and #private brands are lost)', () => {
    const mod = m.instrumented;
    const undo = fillSlot(
      m.reg,
      m.table,
      'Cart',
      () =>
        class {
          v: unknown;
          constructor(v: unknown) {
            this.v = `new ${String(v)}`;
          }
        },
    );
    try {
      const c = new mod.Cart(1, 2);
      assert.equal(c.v, 'new 1');
      assert.ok(c instanceof mod.Cart, 'the prototype comes from new.target');
      assert.equal(c.hello(), 'base new 1 cart');
      assert.throws(() => c.total(), TypeError, 'the original #private brand was never installed');
      const Sub = class extends (mod.Cart as new (...a: unknown[]) => object) {};
      assert.ok(new Sub(3) instanceof Sub, 'a subclass constructor reaches it through super()');
    } finally {
      undo();
    }
    assert.equal(new mod.Cart(1, 2).total(), 2);
  });

  it('parameter initializers run before the check; the replacement gets the arguments as passed', () => {
    const b = m.bindings;
    const start = b.inits as number;
    let received: unknown[] = ['not called'];
    const undo = fillSlot(
      m.reg,
      m.table,
      'withInit',
      () =>
        function (...a: unknown[]) {
          received = a;
          return 'replaced';
        },
    );
    try {
      assert.equal(m.instrumented.withInit(), 'replaced');
    } finally {
      undo();
    }
    assert.equal(b.inits, start + 1, 'the default ran once, before the check');
    assert.deepEqual(received, [], 'the replacement sees the call as made, not the evaluated default');
  });

  it('sloppy functions hand the replacement the this they saw (already coerced)', () => {
    let seen: unknown;
    const undo = fillSlot(
      m.reg,
      m.table,
      'sloppyThis',
      () =>
        function (this: unknown) {
          seen = this;
          return 'replaced';
        },
    );
    try {
      const f = m.instrumented.sloppyThis as () => unknown;
      assert.equal(f(), 'replaced');
    } finally {
      undo();
    }
    assert.equal(seen, globalThis);
  });

  it('arrows with moved parameters forward the arguments as received', () => {
    let received: unknown[] = [];
    const undo = fillSlot(m.reg, m.table, 'destr', () => (...a: unknown[]) => {
      received = a;
      return 'replaced';
    });
    try {
      assert.equal(m.instrumented.destr({ a: 1 }), 'replaced');
    } finally {
      undo();
    }
    assert.deepEqual(received, [{ a: 1 }, undefined]);
    assert.equal(m.instrumented.destr.length, 1);
  });

  it('the instrumented code keeps every line where it was', () => {
    const f = m.table.funcs.find((s) => s.name === 'thrower');
    assert.equal(f?.line, slotLine('function thrower()'));
    assert.equal(m.original.observe().thrower.line, (f?.line ?? 0) + 1);
    assert.equal(typeof slotOf(m.table, 'Cart.prototype[Symbol.iterator]'), 'number');
  });
});

function slotLine(text: string): number {
  const src = readFileSync(fixture('instrument', 'forms.cjs'), 'utf8');
  return src.slice(0, src.indexOf(text)).split('\n').length;
}
