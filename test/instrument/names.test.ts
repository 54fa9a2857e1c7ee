// Symbol names (DESIGN.md §6), table-driven, and their stability against unrelated edits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { instrument, symbolTable } from '../../src/instrument/index.js';
import type { ModuleFormat } from '../../src/instrument/types.js';

const cases: { title: string; source: string; names: string[]; format?: ModuleFormat }[] = [
  { title: 'declaration', source: 'function greet() {}', names: ['greet'] },
  {
    title: 'class members',
    source: `class Cart extends Base {
      constructor() { super(); }
      total() {}
      static fromJSON() {}
      get size() {} set size(v) {}
      static get count() {}
      #recalc() {}
      static #reset() {}
      *[Symbol.iterator]() {}
      'odd-name'() {}
      [dynamic]() {}
      [other]() {}
      42() {}
      handler = () => {};
      static make = function () {};
    }`,
    names: [
      'Cart',
      'Cart.prototype.total',
      'Cart.fromJSON',
      'get Cart.prototype.size',
      'set Cart.prototype.size',
      'get Cart.count',
      'Cart.prototype.#recalc',
      'Cart.#reset',
      'Cart.prototype[Symbol.iterator]',
      'Cart.prototype["odd-name"]',
      'Cart.prototype.<computed>[1]',
      'Cart.prototype.<computed>[2]',
      'Cart.prototype["42"]',
      'Cart.<instance>.handler',
      'Cart.make',
    ],
  },
  {
    title: 'object literals and assignments',
    source: `const api = { handlers: { list() {}, get size() {}, remove: function () {}, add: () => {} } };
      exports.foo = function () {};
      module.exports.bar = () => {};
      Foo.prototype.bar = function () {};
      module.exports = { a() {}, b: async function* () {} };
      this.handler = function () {};
      let late; late = () => {};
      call({ inline() {} });`,
    names: [
      'api.handlers.list',
      'get api.handlers.size',
      'api.handlers.remove',
      'api.handlers.add',
      'exports.foo',
      'module.exports.bar',
      'Foo.prototype.bar',
      'module.exports.a',
      'module.exports.b',
      'this.handler',
      'late',
      'inline',
    ],
  },
  {
    title: 'nesting and anonymous positions (named siblings do not count)',
    source: `function outer() {
      a(function () {});
      function named() { return () => {}; }
      b(() => {}, async () => {});
    }
    setTimeout(function () {});
    [1].map(function tick() {});`,
    names: [
      'outer',
      'outer><anonymous>[1]',
      'outer>named',
      'outer>named><anonymous>[1]',
      'outer><anonymous>[2]',
      'outer><anonymous>[3]',
      '<anonymous>[1]',
      'tick',
    ],
  },
  {
    title: 'class expressions, named function expressions, defaults',
    source: `const K = class { m() {} };
      use(class { n() {} });
      const a = function b() {};
      function f(cb = () => {}) {}
      const { pick = () => {} } = {};`,
    names: ['K.prototype.m', '<anonymous>[1].prototype.n', 'a', 'f', 'f>cb', 'pick'],
  },
  {
    title: 'tsx/esbuild keep-names output names functions as the .ts source does',
    source: `var __name = (target, value) => target;
      function greet(name) { return name; } __name(greet, "greet");
      const add = __name((a, b) => a + b, "add");
      const handlers = { list() { return []; }, remove: __name((id) => id, "remove") };
      class Cart { static { __name(this, "Cart"); } total() { return 1; } static make = __name(() => new Cart(), "make"); }
      setTimeout(() => {}, 1);`,
    names: [
      '__name',
      'greet',
      'add',
      'handlers.list',
      'handlers.remove',
      'Cart.prototype.total',
      'Cart.make',
      '<anonymous>[1]',
    ],
    format: 'module',
  },
  {
    title: 'default exports',
    source: `export default function () {}
      export const x = () => {};`,
    names: ['default', 'x'],
    format: 'module',
  },
  {
    title: 'default export class',
    source: `export default class { m() {} }`,
    names: ['default.prototype.m'],
    format: 'module',
  },
];

describe('instrument: symbol names', () => {
  for (const c of cases) {
    it(c.title, () => {
      const table = symbolTable(c.source, c.format ?? 'commonjs');
      assert.deepEqual(
        table.funcs.map((f) => f.name),
        c.names,
      );
      assert.ok(table.funcs.every((f) => f.sympos === 1));
    });
  }

  it('gives sympos to repeated names, 1-based in source order', () => {
    const table = symbolTable(
      `if (a) { function f() { return 1; } } else { function f() { return 2; } }
       const o = { m() {} }; const p = { m() {} };
       function g() { return function () {}; }`,
      'commonjs',
    );
    assert.deepEqual(
      table.funcs.map((f) => [f.name, f.sympos]),
      [
        ['f', 1],
        ['f', 2],
        ['o.m', 1],
        ['p.m', 1],
        ['g', 1],
        ['g><anonymous>[1]', 1],
      ],
    );
    const twice = symbolTable(
      'const h = { a() {} }; module.exports = { a() {} }; const q = { a() {} }; const h2 = q;',
      'commonjs',
    );
    assert.deepEqual(
      twice.funcs.map((f) => f.name),
      ['h.a', 'module.exports.a', 'q.a'],
    );
  });

  it('records kind, flags, length, parent and position of each function', () => {
    const src =
      'class A {\n  constructor(a, b = 1) {}\n  async *s(x, ...r) {}\n}\nconst f = async (x) => { return () => this; };';
    const t = symbolTable(src, 'module');
    const by = (n: string) => t.funcs.find((f) => f.name === n);
    assert.deepEqual(
      [by('A')?.kind, by('A')?.length, by('A')?.line, by('A')?.column],
      ['constructor', 1, 2, 13],
    );
    assert.deepEqual(
      [by('A.prototype.s')?.async, by('A.prototype.s')?.generator, by('A.prototype.s')?.length],
      [true, true, 1],
    );
    assert.deepEqual([by('f')?.kind, by('f')?.async, by('f')?.parent], ['arrow', true, -1]);
    const inner = by('f><anonymous>[1]');
    assert.equal(inner?.parent, by('f')?.index);
    assert.equal(inner?.usesThis, true);
    assert.equal(by('f')?.usesThis, true, 'an arrow uses the this of where it sits');
    assert.equal(src.slice(by('f')?.start, by('f')?.end), 'async (x) => { return () => this; }');
  });

  it('names do not depend on unrelated code added above or between, nor on line numbers', () => {
    const before = `function outer() {
  items.map((x) => x * 2);
  function inner() {}
}
class Cart { total() { return [1].map(function () {}); } }
module.exports = { run() {}, stop: () => {} };`;
    const after = `// a new comment
const added = () => {};
function alsoAdded() { return function named() {}; }


function outer() {
  const unrelated = 1;
  items.map((x) => x * 2);
  function helper() {}
  function inner() {}
}
function between() {}
class Cart { other() {} total() { return [1].map(function () {}); } }
module.exports = { run() {}, extra() {}, stop: () => {} };`;
    const names = (src: string) => symbolTable(src, 'commonjs').funcs.map((f) => `${f.name}#${f.sympos}`);
    const old = names(before);
    const now = names(after);
    for (const n of old) assert.ok(now.includes(n), `${n} missing from ${now.join(', ')}`);
    assert.deepEqual(old, [
      'outer#1',
      'outer><anonymous>[1]#1',
      'outer>inner#1',
      'Cart.prototype.total#1',
      'Cart.prototype.total><anonymous>[1]#1',
      'module.exports.run#1',
      'module.exports.stop#1',
    ]);
  });

  it('symbolTable() gives the same table instrument() embeds', () => {
    const src = 'function a() {}\nconst b = () => { return function () {}; };\nclass C { m() {} }';
    const r = instrument(src, { id: 'p/x.js', hash: '0'.repeat(64), file: '/x.js', format: 'commonjs' });
    assert.deepEqual(r.symbols, symbolTable(src, 'commonjs'));
    assert.match(r.code, /symbols: '\{"funcs":\[/);
  });
});
