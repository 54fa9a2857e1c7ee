// A function's text as written, from its instrumented text (src/instrument/source-text.ts): every function of a
// file is found in the original and in the instrumented output, and the inverse must give back the original's
// text exactly — for the conformance forms, for the edges of each edit, and for every function of real packages.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Parser } from 'acorn';
import { instrument, originalSourceText } from '../../src/instrument/index.js';
import { quickSourceText } from '../../src/instrument/source-text-quick.js';
import type { ModuleFormat } from '../../src/instrument/types.js';
import { fixture, repoRoot } from '../helpers.js';

type N = any;

const SLOT_TEST = /^__lp\$m\d*$/;
// A prologue's statements that hold functions (SCOPE accessors): its `if`, or the `try` of its early form.
const isPrologue = (s: N) =>
  (s.type === 'IfStatement' &&
    s.test.type === 'MemberExpression' &&
    SLOT_TEST.test(s.test.object.name ?? '')) ||
  (s.type === 'TryStatement' && /^__lp\$[fe]$/.test(s.block.body[0]?.expression?.left?.name ?? ''));
// The module header's statements: slot objects, the facade over them, the registry and its registerModule call.
const isHeader = (s: N) =>
  (s.type === 'VariableDeclaration' &&
    s.declarations.some((d: N) => d.id.type === 'Identifier' && d.id.name.startsWith('__lp$'))) ||
  (s.type === 'ForOfStatement' && s.left.declarations?.[0]?.id.name === '__lp$c') ||
  (s.type === 'IfStatement' && s.test.type === 'BinaryExpression' && s.test.left.name === '__lp$R');

/**
 * The text V8 gives for each function and class of `code`, in source order: a function's or class's own range, a
 * method's from its name (or `get`/`async`/`*`) without `static`. With `skipOurs`, functions the instrumenter wrote
 * (the header's, the SCOPE accessors in prologues) are left out, so that the two lists line up.
 */
function functionTexts(code: string, format: ModuleFormat, skipOurs: boolean): string[] {
  const ast = Parser.parse(code, {
    ecmaVersion: 'latest',
    sourceType: format === 'module' ? 'module' : 'script',
    allowHashBang: true,
    allowReturnOutsideFunction: format === 'commonjs',
  });
  const out: string[] = [];
  const visit = (n: N, parent: N): void => {
    if (skipOurs && (isPrologue(n) || (parent?.type === 'Program' && isHeader(n)))) return;
    if (/^(Function|ArrowFunction|Class)(Declaration|Expression)$/.test(n.type)) {
      let start = n.start;
      const method =
        parent?.value === n &&
        (parent.type === 'MethodDefinition' ||
          (parent.type === 'Property' && (parent.method || parent.kind !== 'init')));
      if (method) {
        start = parent.start;
        if (parent.static) start += (/^static\s*/.exec(code.slice(start)) as RegExpExecArray)[0].length;
      }
      out.push(code.slice(start, n.end));
    }
    for (const key in n) {
      const v = n[key];
      if (Array.isArray(v)) {
        for (const c of v) if (c && typeof c.type === 'string') visit(c, n);
      } else if (v && typeof v.type === 'string') visit(v, n);
    }
  };
  visit(ast, null);
  return out;
}

/** The format `file` instruments as (`.mjs` is a module; a `.js` may be either), or undefined when it does not. */
function formatOf(file: string, source: string): ModuleFormat | undefined {
  const formats: ModuleFormat[] = file.endsWith('.mjs') ? ['module'] : ['commonjs', 'module'];
  return formats.find((format) => {
    try {
      instrument(source, { id: 'p/m.js', hash: 'a'.repeat(64), file: '/tmp/m.js', format });
      return true;
    } catch {
      return false;
    }
  });
}

/** Functions that the parser-free path gave back, out of all instrumented ones, over every roundTrip so far. */
const quick = { hits: 0, of: 0 };

/**
 * Instruments `source` and checks every function's text against the original's — through originalSourceText, and
 * through the parser-free path wherever it answers; returns how many were checked.
 */
function roundTrip(source: string, format: ModuleFormat, label: string): number {
  const out = instrument(source, { id: 'p/m.js', hash: 'a'.repeat(64), file: '/tmp/m.js', format });
  const want = functionTexts(source, format, false);
  const got = functionTexts(out.code, format, true);
  assert.equal(got.length, want.length, `${label}: the same functions in both`);
  want.forEach((text, k) => {
    const instrumented = got[k] as string;
    assert.equal(originalSourceText(instrumented), text, `${label}: function ${k}`);
    if (instrumented === text) return;
    const fast = quickSourceText(instrumented);
    quick.of++;
    if (fast === undefined) return;
    quick.hits++;
    assert.equal(fast, text, `${label}: function ${k}, without the parser`);
  });
  return want.length;
}

describe('originalSourceText', () => {
  it('gives back every conformance form as written (forms.cjs, forms.mjs)', () => {
    for (const name of ['forms.cjs', 'forms.mjs']) {
      const n = roundTrip(
        readFileSync(fixture('instrument', name), 'utf8'),
        name.endsWith('.mjs') ? 'module' : 'commonjs',
        name,
      );
      assert.ok(n > 10, `${name}: ${n} functions`);
    }
  });

  const cases: [string, string, ModuleFormat?][] = [
    ['concise arrow', 'const f = x => x * 2;'],
    ['concise arrow without spaces', 'const f=x=>x*2;'],
    ['block arrow written like a concise one', 'const f = x => { return (x) };'],
    [
      'concise arrow whose body holds `) }` in a string, a template and a regex',
      'const f = x => [") }", `) }${x}`, /\\) }/];',
    ],
    ['nested concise arrows ending together', 'const f = a => b => c => a + b + c;'],
    ['comment between => and the body', 'const f = (a) => /* why */ a;'],
    ['directive with a semicolon', "function f() { 'use strict'; return 1; }"],
    ['directive without a semicolon', "function f() { 'use strict'\n  return 1 }"],
    ['two directives', "function f() { 'use strict'; 'use asm'\n return 1 }"],
    [
      'moved parameters on one line',
      'const f = ({ a, b = [1, 2] }, [c] = [3], ...rest) => a + b + c + rest.length;',
    ],
    ['moved rest with a space after the dots', 'const f = (a = 1, ... rest) => rest;'],
    ['moved pattern holding `, 1: `', 'const f = ({ 0: a, 1: b }, c = { 1: 2 }) => a + b + c;'],
    ['moved parameters over several lines', 'const f = ({\n  a,\n  b = 2,\n}, c = 3) => a + b + c;'],
    ['moved parameter followed by a comment', 'const f = ({ a }/* a */, b = 1) => a + b;'],
    ['moved parameters and a concise body', 'const f = async ({ a }) => await a;'],
    [
      'class with private names, accessors, statics and a derived constructor',
      'class A extends Object { #x = 1; static s(a) { return a } get x() { return this.#x } set x(v) { this.#x = v }\n' +
        '  constructor() { super(); this.f = () => this.#x } static { this.y = () => 1 } *g() { yield 1 } async *h() {} }',
    ],
    [
      'object literal methods, computed keys, sloppy octal',
      'const o = { m() { return 010 }, [`k`]() {}, get g() { return 1 }, "s"(a) {} };',
    ],
    [
      'new.target and super in arrows',
      'class B extends Object { m() { return () => super.toString() } }\nfunction F() { return () => new.target }',
    ],
    [
      'arguments and default parameters in a function',
      'function f(a = 1, { b } = {}) { return arguments.length + a + b }',
    ],
    [
      'generator and async function declarations',
      'function* g(a) { yield a } async function h(b) { return await b }',
    ],
    [
      'import.meta in a module',
      'export const f = () => import.meta.url;\nexport function g() { return import.meta.url }',
      'module',
    ],
    [
      "an ES module's hoisted functions (their prologue's early form), with nested concise and moved arrows",
      "export function f(a) { 'use strict'\n  return [(x) => x + a, ({ y } = {}) => y, (z) => { return (z) }]; }\n" +
        'export default function () { function inner() { return 1 } return inner }\nfunction* g() { yield 1 }',
      'module',
    ],
    ['hashbang and CommonJS', '#!/usr/bin/env node\nmodule.exports = function named(x) { return x }'],
  ];
  for (const [label, source, format] of cases) {
    it(`gives back ${label}`, () => {
      assert.ok(roundTrip(source, format ?? 'commonjs', label) > 0);
    });
  }

  // A subset on every run; LIVEPATCH_TEST_SOURCE_TEXT=all takes every package in node_modules (3,502 files, 80,042
  // functions on 2026-12-02: a few minutes, for changes to the instrumenter's output).
  it('gives back every function of real packages as written', () => {
    const all = process.env.LIVEPATCH_TEST_SOURCE_TEXT === 'all';
    const roots = (
      all ? ['.'] : ['express', 'router', 'body-parser', 'fastify/lib', 'js-yaml/dist', 'semver']
    ).map((d) => join(repoRoot, 'node_modules', d));
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(c|m)?js$/.test(e.name) && statSync(p).size < 1e6) files.push(p);
      }
    };
    roots.forEach(walk);
    let functions = 0;
    for (const file of files) {
      const source = readFileSync(file, 'utf8');
      const format = formatOf(file, source);
      // Across all of node_modules some files are not JavaScript this Node runs (fixtures, other dialects).
      if (format === undefined && all) continue;
      functions += roundTrip(source, format ?? 'commonjs', file);
    }
    assert.ok(files.length > 60 && functions > 1000, `${files.length} files, ${functions} functions`);
    // Most functions need no parser (moved parameters, and strings in a concise arrow's body, do).
    assert.ok(quick.hits > 0.8 * quick.of, `the parser-free path answered ${quick.hits} of ${quick.of}`);
  });

  it('leaves alone text that holds no slot, and text it cannot read, without throwing', () => {
    for (const text of [
      'function f() { return 1 }',
      'function toString() { [native code] }',
      'class A {}',
      '__lp$m',
      'if (__lp$m.f0) { const __lp$f = __lp$m.r0(); if (__lp$f) return __lp$f.call(this); }',
      'function f() { if (__lp$m.f0) {',
      '() => { if (__lp$m.f0) { const __lp$e = __lp$m.r0(); if (__lp$e) return __lp$e.call(this); } return (1); x }',
      "function f() { 'x'+if (__lp$m.f0) { const __lp$f = __lp$m.r0(); if (__lp$f) return 1; } }",
    ]) {
      assert.equal(originalSourceText(text), text);
    }
  });
});
