// Fixture pairs for every kind of change the builder knows: each asserts the classification or the exact refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPatch, type BuildResult } from '../../src/build/index.js';
import { fixture } from '../helpers.js';

async function dryRun(name: string): Promise<BuildResult> {
  return buildPatch({
    old: fixture('build/cases', name, 'old'),
    new: fixture('build/cases', name, 'new'),
    name: 'fixture',
    dryRun: true,
  });
}

/** `change name` lines of every changed module, in order. */
function changes(r: BuildResult): string[] {
  return r.modules.flatMap((m) =>
    m.funcs.map((f) => `${f.change} ${f.name}${f.newName ? ` -> ${f.newName}` : ''}`),
  );
}

function refusals(r: BuildResult): string[] {
  return r.refusals.map((x) => `${x.where}: ${x.construct}`);
}

const accepted: { name: string; changes: string[]; patch: RegExp[] }[] = [
  {
    name: 'changed',
    changes: ['changed greet'],
    patch: [/return function greet\(name\) \{\n {2}return 'hello, ' \+ name;/],
  },
  {
    name: 'nested',
    changes: ['changed module.exports>next'],
    // The enclosing function's variables go through ctx.scope(), read once at entry, written through.
    patch: [
      /const __lp\$s = __lp\$ctx\.scope\(\);/,
      /__lp\$s\.count \+= 1;/,
      /return __lp\$s\.prefix \+ '#' \+ __lp\$s\.count/,
    ],
  },
  {
    name: 'helper',
    changes: ['changed check', 'helper isBad', 'constant BAD'],
    patch: [
      /function isBad\(key\) \{\n {2}return BAD\.has\(key\);/,
      /const BAD = new Set/,
      /const \{ isBad \} = __lp\$shared0/,
    ],
  },
  {
    name: 'moved-constant',
    // 'explain' did not change but reads the changed constant: it is patched too, or it would keep the old value.
    changes: ['changed valid', 'changed explain', 'constant NAME'],
    patch: [/const NAME = \/\^\[a-z\]\[a-z0-9-\]\*\$\/;/, /const \{ NAME \} = __lp\$shared0/],
  },
  {
    name: 'settled-var',
    // A 'var' that nothing assigns is a constant in all but name (cookie 0.7.0): its new value moves into the
    // patch, and so does a new one; the local 'NAME' that 'explain' assigns is another variable.
    changes: ['changed valid', 'constant NAME', 'constant DIGITS'],
    patch: [/const NAME = \/\^\[a-z\]\[a-z0-9-\]\*\$\/;/, /const DIGITS = new RegExp\('\[0-9\]', 'g'\);/],
  },
  {
    name: 'renamed-changed',
    // Renamed as it changed (path-to-regexp 0.1.10): 'module.exports = pathToRegexp' still hands out the running
    // function, so its slot takes the new body. The callback reads a new variable the running one cannot capture;
    // String.prototype.replace calls it and drops it, so the patched maker's new callbacks are enough.
    changes: [
      'changed pathtoRegexp -> pathToRegexp',
      'changed pathtoRegexp><anonymous>[1] -> pathToRegexp><anonymous>[1]',
    ],
    patch: [/return function pathToRegexp\(path\) \{\n {2}var backtrack = '';/],
  },
  {
    name: 'wrapper-constant',
    // lodash 4.17.21: new plain-data variables of the wrapper that ran once are made by the replacement itself,
    // and 'Error', which the running 'check' does not capture, is runInContext's alias of the global.
    changes: ['changed <anonymous>[1]', 'changed <anonymous>[1]>runInContext>check'],
    patch: [
      /return function check\(name\) \{ const reForbidden = \/\[\(\)=,\{\}\\\[\\\]\\\/\\s\]\/; const INVALID_TEXT = 'Invalid name';/,
      /throw new Error\(INVALID_TEXT\)/,
    ],
  },
  {
    name: 'renamed',
    // Same body under a new name: nothing to patch; the caller reaches it under its running name.
    changes: ['renamed sum -> add', 'changed total'],
    patch: [/xs\.reduce\(__lp\$b\.sum, 0\)/],
  },
  {
    name: 'nested-helper',
    // A new function beside the patched nested one comes along inside its replacement, reading the same scope.
    changes: ['changed module.exports', 'helper module.exports>clamp', 'changed module.exports>within'],
    patch: [
      /return function within\(n\) \{ const __lp\$s = __lp\$ctx\.scope\(\); function clamp\(n\) \{\n {4}return Math\.min\(n, __lp\$s\.limit\);/,
    ],
  },
  {
    name: 'constructor',
    // The replacement is a class extending the running class's parent, repeating its (unchanged) fields.
    changes: ['changed Cart'],
    patch: [
      /return class Cart extends Object\.getPrototypeOf\(__lp\$b\.Cart\) \{ items = \[\]; constructor\(owner\) \{/,
    ],
  },
  {
    name: 'removed',
    changes: ['changed a', 'removed helper'],
    patch: [/return function a\(\) \{ return 2; \}/],
  },
];

for (const c of accepted)
  test(`build: '${c.name}' is classified and patched`, async () => {
    const r = await dryRun(c.name);
    assert.deepEqual(refusals(r), []);
    assert.deepEqual(changes(r), c.changes);
    assert.equal(r.ok, true);
    for (const re of c.patch) assert.match(r.patch ?? '', re);
  });

test("build: '--ignore-load-time' turns a load-time refusal into a note, and then nothing is left to patch", async () => {
  const r = await buildPatch({
    old: fixture('build/cases/load-time/old'),
    new: fixture('build/cases/load-time/new'),
    ignoreLoadTime: true,
    dryRun: true,
  });
  assert.deepEqual(r.refusals, []);
  assert.equal(r.message, 'no functional changes found');
  assert.deepEqual(r.modules[0]?.notes, [
    "'<anonymous>[1]' runs once at load; its change at lib.js:2 is not applied to the target",
  ]);
});

test("build: 'whitespace' — formatting and comments are not changes", async () => {
  const r = await dryRun('whitespace');
  assert.equal(r.ok, false);
  assert.deepEqual(r.refusals, []);
  assert.equal(r.message, 'no functional changes found');
  assert.equal(r.modules[0]?.status, 'no code change');
});

const refused: { name: string; refusals: string[]; remedy: RegExp }[] = [
  {
    name: 'esm-exports',
    refusals: ["lib.mjs:4: changed exports: new export 'shout'"],
    remedy: /keep the export list/,
  },
  {
    name: 'cjs-exports',
    refusals: ["lib.js:2: changed exports 'module.exports = { greet, version: 2 };'"],
    remedy: /change the functions behind them/,
  },
  {
    name: 'side-effect',
    refusals: ["lib.js:2: new top-level statement 'cache.set('boot', Date.now());'"],
    remedy: /postPatch callback/,
  },
  {
    name: 'changed-let',
    // 'raise' assigns it: the running module's 'limit' is state, not a constant.
    refusals: ["lib.js:1: changed initial value of module-level 'let limit'"],
    remedy: /ctx\.bindings\.limit = …/,
  },
  {
    name: 'stored-callback',
    // A listener outlives the call that made it: the running one must itself run new code, and it cannot.
    refusals: [
      "lib.js:4: patched 'watch><anonymous>[1]' reads 'n' of its enclosing function, which the running code does not capture",
    ],
    remedy: /patch the enclosing function instead/,
  },
  {
    name: 'cjs-new-export',
    // ejs 3.1.7's 'exports.createNullProtoObjWherePossible = …': named, with what to do.
    refusals: ["lib.js:4: changed exports: new export 'blank'"],
    remedy: /prePatch callback \(ctx\.bindings\.module\.exports\.blank = …\)/,
  },
  {
    name: 'wrapper-state',
    // A new wrapper variable that code assigns is state, which the wrapper made once: both refused.
    refusals: [
      "lib.js:3: changed code in '<anonymous>[1]', which runs once when the module loads",
      "lib.js:7: patched '<anonymous>[1]>runInContext>check' reads 'checked' of its enclosing function, which the running code does not capture",
    ],
    remedy: /redo its effect in a postPatch callback/,
  },
  {
    name: 'settled-var-read',
    // The exports object already holds the old regular expression: a new one in the patch would split them.
    refusals: ["lib.js:5: changed module-level var 'NAME' is read at module level"],
    remedy: /recompute it in a postPatch callback/,
  },
  {
    name: 'class-new-method',
    refusals: ["lib.js:3: changed class shape: new 'Cart' member 'method sum'"],
    remedy: /Object\.defineProperty\(ctx\.bindings\.Cart\.prototype/,
  },
  {
    name: 'class-field',
    refusals: ["lib.js:2: changed class shape: changed 'Cart' member 'field items'"],
    remedy: /shadow variable/,
  },
  {
    name: 'private',
    refusals: ["lib.js:3: patched 'Cart.prototype.total' uses private member '#n'"],
    remedy: /patch a public method that calls a helper/,
  },
  {
    name: 'nested-constructor',
    refusals: ["lib.js:3: changed constructor of 'make>Point', a class not bound at module level"],
    remedy: /method or helper the constructor calls/,
  },
  {
    name: 'more-args',
    refusals: ["lib.js:1: patched 'greet' now takes 2 arguments but the running function passes on only 1"],
    remedy: /options object/,
  },
  {
    name: 'new-import',
    refusals: [
      "lib.mjs:2: new import of 'node:fs'",
      "lib.mjs:3: patched 'p' uses new module-level 'import readFileSync'",
    ],
    remedy: /import\('node:…'\) inside the patched function/,
  },
  {
    name: 'new-state',
    refusals: ["lib.js:2: patched 'hit' uses new module-level 'let hits'"],
    remedy: /shadow variable/,
  },
  {
    name: 'import-meta',
    refusals: [
      "lib.mjs:2: patched 'where' uses 'import.meta'",
      "lib.mjs:3: patched 'where' calls import() of './other.mjs'",
    ],
    remedy: /const here = import\.meta\.url/,
  },
  {
    name: 'eval',
    refusals: ["lib.js:3: patched 'run' calls 'eval'"],
    remedy: /write the replacement by hand/,
  },
  {
    name: 'reserved',
    refusals: [
      "lib.js:1: module cannot be instrumented (cannot instrument 'lib.js': identifier '__lp$x' is reserved for livepatch)",
    ],
    remedy: /nothing in it can be live-patched/,
  },
  {
    name: 'sloppy',
    refusals: ["lib.js:2: patched 'track' assigns undeclared 'lastTracked' (sloppy mode)"],
    remedy: /globalThis\.lastTracked = …/,
  },
  {
    name: 'notrace',
    refusals: ["lib.js:2: changed function 'hot', which cannot be patched (notrace)"],
    remedy: /remove its notrace mark/,
  },
  {
    name: 'load-time',
    refusals: ["lib.js:2: changed code in '<anonymous>[1]', which runs once when the module loads"],
    remedy: /accept that with --ignore-load-time/,
  },
  {
    name: 'uncaptured',
    refusals: [
      "lib.js:4: patched 'module.exports>get' reads 'b' of its enclosing function, which the running code does not capture",
    ],
    remedy: /patch the enclosing function instead/,
  },
];

for (const c of refused)
  test(`build: '${c.name}' is refused with file, line, construct and remedy`, async () => {
    const r = await dryRun(c.name);
    assert.equal(r.ok, false);
    assert.equal(r.patch, undefined);
    assert.deepEqual(refusals(r), c.refusals);
    assert.match(r.refusals[0]?.remedy ?? '', c.remedy);
    assert.equal(
      r.refusals[0]?.module,
      c.name.includes('esm') || c.name.includes('import') ? 'app/lib.mjs' : 'app/lib.js',
    );
  });

// flat 5.0.1 and tough-cookie 4.1.3: changes the fix does not need are refused by default, and with
// --ignore-load-time reported as not applied while the rest is patched.
const ignorable: { name: string; refusal: string; note: string; changes: string[] }[] = [
  {
    name: 'swapped-dependency',
    refusal: "lib.js:1: module-level 'isBuffer' changed from 'var' to 'function'",
    note: "module-level 'isBuffer' changed from 'var' to 'function' (lib.js:1) is not applied: the target keeps its running value, and no changed code reads it",
    changes: ['new isBuffer', 'changed keys', 'new keys><anonymous>[1]'],
  },
  {
    name: 'primitive-export',
    refusal: "version.js:1: changed exports 'module.exports = '1.0.1';'",
    note: "'module.exports = '1.0.1';' (version.js:1) is not applied: the running module keeps exporting its old value",
    changes: ['changed get'],
  },
];

for (const c of ignorable)
  test(`build: '${c.name}' is refused, and with --ignore-load-time left unapplied with a note`, async () => {
    const strict = await dryRun(c.name);
    assert.equal(strict.ok, false);
    assert.deepEqual(refusals(strict), [c.refusal]);
    const r = await buildPatch({
      old: fixture('build/cases', c.name, 'old'),
      new: fixture('build/cases', c.name, 'new'),
      ignoreLoadTime: true,
      dryRun: true,
    });
    assert.deepEqual(refusals(r), []);
    assert.equal(r.ok, true);
    assert.deepEqual(changes(r), c.changes);
    assert.deepEqual(
      r.modules.flatMap((m) => m.notes),
      [c.note],
    );
  });
