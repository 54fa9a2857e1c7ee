// The instrumenter's edges: errors, notrace, directives and hashbangs, line preservation, refusals, big modules.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import vm from 'node:vm';
import { ASM_MODULE } from '../../src/instrument/analyze.js';
import { INSTRUMENTER_VERSION, instrument, isNotraceFile, symbolTable } from '../../src/instrument/index.js';
import type { ModuleFormat } from '../../src/instrument/types.js';
import { isLivepatchError } from '../../src/errors.js';
import { tmpProject } from '../helpers.js';
import { installRegistry } from './harness.js';

function run(source: string, format: ModuleFormat = 'commonjs') {
  return instrument(source, { id: 'p/m.js', hash: 'a'.repeat(64), file: '/tmp/m.js', format });
}

/** Evaluates CommonJS code in a fresh wrapper (vm.compileFunction is what Node's loader uses too). */
function evalCjs(code: string): Record<string, any> {
  const module = { exports: {} as Record<string, any> };
  const fn = vm.compileFunction(code, ['exports', 'require', 'module', '__filename', '__dirname'], {
    filename: '/tmp/m.js',
  });
  fn(module.exports, createRequire(import.meta.url), module, '/tmp/m.js', '/tmp');
  return module.exports;
}

describe('instrument: edges', () => {
  it('throws EINSTRUMENT naming the file and the line:column of a syntax error', () => {
    assert.throws(
      () => run('function ok() {}\nconst = 1;'),
      (e: unknown) =>
        isLivepatchError(e) &&
        e.code === 'EINSTRUMENT' &&
        e.message.startsWith("cannot instrument '/tmp/m.js': ") &&
        /\(2:6\)/.test(e.message),
    );
  });

  it('refuses a module that already uses a reserved __lp$ identifier (and so any instrumented output)', () => {
    assert.throws(() => run('const __lp$x = 1;'), /identifier '__lp\$x' is reserved for livepatch/);
    assert.throws(
      () => run('function f() { return __lp$m; }'),
      (e: unknown) => isLivepatchError(e) && e.code === 'EINSTRUMENT',
    );
    const once = run('function f() {}').code;
    assert.throws(() => run(once), /reserved/);
    assert.doesNotThrow(
      () => run('obj.__lp$x = 1; const s = "__lp$m";'),
      'properties and strings are not identifiers',
    );
  });

  it('symbolsKey keeps the table out of the header; bindings are made once, on first use', () => {
    const src = `let n = 1;\nfunction f() { return n; }\nfunction g() {}\ng = () => 2;\nexports.f = f;\n`;
    const inline = run(src);
    const keyed = instrument(src, {
      id: 'p/m.js',
      hash: 'a'.repeat(64),
      file: '/tmp/m.js',
      format: 'commonjs',
      symbolsKey: 'k1',
    });
    assert.deepEqual(keyed.symbols, inline.symbols);
    assert.match(inline.code, /symbols: '\{"funcs":/);
    assert.doesNotMatch(keyed.code, /"funcs"|symbols:/);
    assert.match(keyed.code, /symbolsKey: "k1"/);
    const registry = installRegistry();
    try {
      evalCjs(keyed.code);
    } finally {
      registry.uninstall();
    }
    const reg = registry.modules[0]!;
    assert.equal(reg.abi, 3);
    assert.equal(reg.symbols, undefined);
    assert.equal(typeof reg.bindings, 'function');
    const b = (reg.bindings as () => Record<string, unknown>)();
    const set = (name: string) => Object.getOwnPropertyDescriptor(b, name)?.set !== undefined;
    // A function declaration the module never reassigns has a getter only; one it reassigns, and a let, a setter.
    assert.deepEqual([set('n'), set('f'), set('g')], [true, false, true]);
    b.n = 5;
    assert.equal((b.f as () => number)(), 5);
  });

  it('INSTRUMENTER_VERSION is a non-empty string', () => {
    assert.match(INSTRUMENTER_VERSION, /^\d+\.\d+$/);
  });

  it('keeps hashbang and directives in place; the header shares the first statement line', () => {
    const src =
      "#!/usr/bin/env node\n'use strict'\n\nconst x = 1;\nfunction f() {\n  'use strict'\n  return this;\n}\nmodule.exports = { f, x };";
    const { code } = run(src);
    const lines = code.split('\n');
    assert.equal(lines.length, src.split('\n').length);
    assert.equal(lines[0], '#!/usr/bin/env node');
    assert.equal(lines[1], "'use strict'");
    assert.match(
      lines[3] as string,
      /^const __lp\$m = \{ __lp\$u_[0-9a-f]{16}: 0, f0: false, r0: void 0 \};.* const x = 1;$/,
    );
    assert.match(lines[5] as string, /^ {2}'use strict';if \(__lp\$m\.f0\)/);
    const ex = evalCjs(code.replace(/^#!.*/, ''));
    const f = ex.f as () => unknown;
    assert.equal(f(), undefined, 'the function directive still makes it strict');
    assert.equal(ex.x, 1);
  });

  it('places the header after a directive-only body and in an empty module', () => {
    assert.match(run("'use strict'").code, /^'use strict'; const __lp\$m/);
    assert.match(run('').code, /^const __lp\$m/);
    assert.match(run('#!/bin/node\n').code, /^#!\/bin\/node\nconst __lp\$m/);
  });

  it('never moves a line, whatever the forms (every original line ends up on the same line)', () => {
    const src = [
      'const a = (x) =>',
      '  x + 1',
      'const b = async x => (',
      '  { v: x })',
      'const c = (x, y) => // trailing',
      '  [x, y]',
      'function d(p = (() => 1)()) {',
      '  return p',
      '}',
      'module.exports = { a, b, c, d, e: ({ k }) => k, f: x => y => x * y }',
    ].join('\n');
    const { code } = run(src);
    const out = code.split('\n');
    src.split('\n').forEach((line, i) => {
      const tail = line.trim().split(/\s+/).pop() as string;
      assert.ok((out[i] as string).includes(tail), `line ${i + 1}: '${out[i]}' lacks '${tail}'`);
    });
    const ex = evalCjs(code);
    assert.equal(ex.a(1), 2);
    assert.deepEqual(ex.c(1, 2), [1, 2]);
    assert.equal(ex.d(), 1);
    assert.equal(ex.e({ k: 3 }), 3);
    assert.equal(ex.f(2)(3), 6);
    return ex.b(4).then((v: unknown) => assert.deepEqual(v, { v: 4 }));
  });

  it('// livepatch: notrace leaves the next function alone and lists it', () => {
    const src = `// livepatch: notrace
function hot() { return 1; }
function normal() { return 2; }
const obj = {
  /* livepatch: notrace */ m() {},
};
const arrow = /* livepatch: notrace */ () => 3;`;
    const r = run(src);
    assert.deepEqual(
      r.symbols.funcs.map((f) => f.name),
      ['normal'],
    );
    assert.deepEqual(r.symbols.unpatchable, [
      { name: 'hot', line: 2, reason: 'notrace' },
      { name: 'obj.m', line: 5, reason: 'notrace' },
      { name: 'arrow', line: 7, reason: 'notrace' },
    ]);
    assert.match(r.code, /function hot\(\) \{ return 1; \}/);
  });

  it('// livepatch: notrace-file leaves the whole file unchanged', () => {
    const src = '#!/usr/bin/env node\n/* license */\n// livepatch: notrace-file\nfunction f() {}';
    assert.equal(isNotraceFile(src), true);
    assert.equal(isNotraceFile('function f() {}\n// livepatch: notrace-file'), false);
    const r = run(src);
    assert.equal(r.code, src);
    assert.deepEqual(r.symbols, { funcs: [], unpatchable: [] });
    assert.deepEqual(symbolTable(src, 'commonjs'), { funcs: [], unpatchable: [] });
  });

  it('refuses arrows whose parameters cannot move into the body with the same meaning, and says why', () => {
    const src = `const a = ({ x }, y = 1) => x + y;
const b = ({ x }, // a comment
  y) => x;
const c = ({ x }) => { var x; return x; };
const d = (p = helper()) => { function helper() { return 1; } return p; };
const e = (f = () => 1) => f();
const g = (x, ...rest) => rest;`;
    const r = run(src);
    assert.deepEqual(
      r.symbols.funcs.map((f) => f.name),
      ['a', 'd>helper', 'e>f', 'g'],
    );
    assert.deepEqual(
      r.symbols.unpatchable.map((u) => [u.name, u.reason]),
      [
        ['b', 'arrow with multi-line parameters holding comments, templates or line continuations'],
        ['c', 'arrow whose body redeclares a parameter'],
        ['d', 'arrow whose parameter defaults refer to names its body declares'],
        ['e', 'arrow with functions in its destructured or default parameters'],
      ],
    );
    const ex = evalCjs(
      src.replace(/^const (\w)/gm, 'exports.$1 = 0; const $1') +
        '\nObject.assign(exports, { a, b, c, d, e, g });',
    );
    const ey = evalCjs(
      r.code.replace(/^const (\w)/gm, 'exports.$1 = 0; const $1') +
        '\nObject.assign(exports, { a, b, c, d, e, g });',
    );
    for (const k of ['a', 'b', 'c', 'd', 'e', 'g']) assert.equal(ey[k].length, ex[k].length, k);
    assert.equal(ey.a({ x: 1 }), 2);
    // Moving d's parameters would have made `helper` visible to its default: the original throws, so must we.
    assert.throws(() => ex.d(), ReferenceError);
    assert.throws(() => ey.d(), ReferenceError);
  });

  it('splits big modules into several slot objects behind one slots object', (t) => {
    const n = 1234;
    const src =
      Array.from({ length: n }, (_, i) => `function f${i}() { return ${i}; }`).join('\n') +
      '\nmodule.exports = { f1233, f0 };';
    const { code, symbols } = run(src);
    assert.equal(symbols.funcs.length, n);
    assert.match(code, /__lp\$m2 = \{ __lp\$u_[0-9a-f]{16}_2: 0, f1000: false/);
    const project = tmpProject({ 'big.js': code });
    t.after(project.cleanup);
    const registry = installRegistry();
    let ex;
    try {
      ex = createRequire(import.meta.url)(join(project.dir, 'big.js'));
    } finally {
      registry.uninstall();
    }
    const reg = registry.modules[0];
    assert.ok(reg);
    assert.equal(Object.keys(reg.slots).length, 2 * n);
    reg.slots.r1233 = () => () => 'patched';
    reg.slots.f1233 = true;
    assert.equal(ex.f1233(), 'patched');
    assert.equal(ex.f0(), 0);
    reg.slots.f1233 = false;
    assert.equal(ex.f1233(), 1233);
    writeFileSync(join(project.dir, 'unused'), '');
  });

  it('in an ESM cycle, a function called before its module evaluates runs as written (its slot is not there yet)', async (t) => {
    const a =
      "import { b } from './b.mjs';\nexport function a(x = 'a') { return [x].map((y) => y + '!')[0]; }\nexport { b };";
    const b = "import { a } from './a.mjs';\nexport const b = a();";
    const esm = (src: string, file: string) =>
      instrument(src, { id: `p/${file}`, hash: '0', file, format: 'module' }).code;
    const project = tmpProject({
      'orig/a.mjs': a,
      'orig/b.mjs': b,
      'instr/a.mjs': esm(a, 'a.mjs'),
      'instr/b.mjs': esm(b, 'b.mjs'),
    });
    t.after(project.cleanup);
    const url = (p: string) => new URL(`file://${join(project.dir, p)}`).href;
    assert.equal((await import(url('orig/a.mjs'))).b, 'a!');
    const registry = installRegistry();
    t.after(registry.uninstall);
    const instr = await import(url('instr/a.mjs'));
    assert.equal(instr.b, 'a!');
    // Once its module has evaluated, the function goes through its slot as any other.
    const reg = registry.modules.find((m) => m.id === 'p/a.mjs');
    assert.ok(reg !== undefined);
    const slots = reg.slots as Record<string, unknown>;
    slots.r0 = () => () => 'patched';
    slots.f0 = true;
    assert.equal(instr.a(), 'patched');
  });

  it('leaves an asm.js module as written, listed as not patchable, so that V8 still compiles it as asm.js', (t) => {
    const asm =
      'function Mod(stdlib, foreign, heap) { "use asm"; function add(a, b) { a = a | 0; b = b | 0; ' +
      'return (a + b) | 0; } return { add: add }; }';
    const src = `${asm}\nfunction plain(x) { return x; }\nmodule.exports = { Mod, plain };`;
    const { code, symbols } = run(src);
    assert.ok(code.includes(asm), 'the asm.js module is unchanged');
    assert.deepEqual(
      symbols.funcs.map((f) => f.name),
      ['plain'],
    );
    assert.deepEqual(
      symbols.unpatchable.map((u) => [u.name, u.reason]),
      [
        ['Mod', ASM_MODULE],
        ['Mod>add', ASM_MODULE],
      ],
    );
    // V8's own word (a runtime function of its test suite): the instrumented file's module is asm.js code.
    const project = tmpProject({
      'asm.js': `${code}\nconsole.log(module.exports.Mod(globalThis).add(2, 3), %IsAsmWasmCode(module.exports.Mod));\n`,
    });
    t.after(project.cleanup);
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', join(project.dir, 'asm.js')], {
      encoding: 'utf8',
    });
    assert.equal(r.stdout.trim(), '5 true', r.stderr);
  });

  it('gives SELF for nested declarations only where it costs no new heap context', () => {
    const src = `function factory() { let state = 0; function onRequest() { return ++state; } return onRequest; }
function plain() { function helper() { return 1; } return helper(); }
function rec() { function again(n) { return n ? again(n - 1) : 0; } return again(3); }
const top = () => 1;`;
    const self = Object.fromEntries(run(src).symbols.funcs.map((f) => [f.name, f.self]));
    assert.deepEqual(self, {
      factory: true,
      'factory>onRequest': true,
      plain: true,
      'plain>helper': false,
      rec: true,
      'rec>again': true,
      top: true,
    });
  });
});
