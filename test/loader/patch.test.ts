// End to end through the loader: a function of an instrumented module, captured before the patch, runs the
// patched code once the runtime applies a patch module that imports 'livepatch' from outside the app.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { repoRoot, tmpProject } from '../helpers.js';
import { runApp } from './app.js';

const runtimeUrl = pathToFileURL(join(repoRoot, 'dist/src/runtime/index.js')).href;
const tsx = ['--import', pathToFileURL(join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href];
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

// Loads ../patch/fix.mjs as a patch module, the way the control server does (src/control/patches.ts: `livepatch`
// resolves from it while the loader's selfResolve is held), and prints before and after.
const apply = (call: string) => `const before = ${call};
const { getRuntime } = await import(${JSON.stringify(runtimeUrl)});
const url = new URL('../patch/fix.mjs', 'file://' + process.cwd() + '/');
url.searchParams.set('livepatch-patch', '1');
const release = globalThis[Symbol.for('livepatch.loader')].selfResolve();
getRuntime().loadPatch((await import(url.href)).default);
release();
await getRuntime().waitForTransition(5000);
console.log('result', before, ${call});
`;
const patch = (module: string, func: string, sympos: number, hash: string, replacement: string) =>
  `import { defineLivepatch } from 'livepatch';
export default defineLivepatch({ name: 'fix', objects: [{ module: '${module}', hash: '${hash}',
  funcs: [{ name: '${func}', sympos: ${sympos}, replacement: ${replacement} }] }] });
`;

interface Case {
  name: string;
  /** The package.json "type"; undefined for none (Node then detects the format from the syntax). */
  type: 'module' | 'commonjs' | undefined;
  files: Record<string, string>;
  entry: string;
  module: string;
  func: string;
  lib: string;
  /** 0 when the name is unique in the module. */
  sympos?: number;
  before?: string[];
  pkg?: Record<string, unknown>;
  skip?: boolean;
  /** The patch's replacement, as source text: by default one that returns its first argument times 100. */
  replacement?: string;
}

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/** Node runs .ts files itself (type stripping on by default): 22.18+, 23.6+. */
const stripsTypes = major > 22 || (major === 22 && minor >= 18);
const ctsLib = `function price(n: number): number {\n  return n * 2;\n}\nmodule.exports = { price };\n`;

const esmLib = `export function price(n) {\n  return n * 2;\n}\n`;
const cjsLib = `function price(n) {\n  return n * 2;\n}\nmodule.exports = { price };\n`;
const tsLib = `export function price(n: number): number {\n  return n * 2;\n}\n`;
// A module may declare its own `Symbol`, `globalThis`, `Reflect` or `Object`, hoisted and undefined when the header
// runs (lodash's standalone packages, 50M downloads a week, start with `var Symbol = root.Symbol`): the header and
// the prologues must not read them. Until slot ABI 3 such a module threw at its first line under the loader.
const shadowingLib = `var Symbol = undefined;
var Reflect = {};
var Object = null;
let globalThis = 'mine';
function price(n) {
  return n * 2;
}
module.exports = { price, globals: [typeof Symbol, typeof Reflect, Object, globalThis] };
`;
const shadowingEsm = `const Symbol = 'mine';\nexport function price(n) {\n  return n * 2;\n}\nexport { Symbol };\n`;
// A patched constructor forwards through Reflect.construct, which the module's own `Reflect` must not hide.
const constructorLib = `var Reflect = {};
class Price {
  constructor(n) {
    this.value = n * 2;
  }
}
function price(n) {
  return new Price(n).value;
}
module.exports = { price };
`;
// Over 500 functions: the slot objects reach the runtime through one object of accessors, made without `Object`.
const bigLib =
  'var Object = null;\n' +
  Array.from({ length: 520 }, (_, i) => `function g${i}() {\n  return ${i};\n}\n`).join('') +
  'function price(n) {\n  return n * 2;\n}\nmodule.exports = { price, g0 };\n';
const cases: Case[] = [
  {
    name: 'a module that declares its own Symbol, globalThis, Reflect and Object (CommonJS)',
    type: 'commonjs',
    files: {
      'lib.js': shadowingLib,
      'main.js': `const lib = require('./lib.js');\nconsole.log('globals', JSON.stringify(lib.globals));\nconst p = lib.price;\n(async () => {\n${apply('p(3)')}})();\n`,
    },
    entry: 'main.js',
    module: 'app/lib.js',
    func: 'price',
    lib: shadowingLib,
  },
  {
    name: 'a module that declares its own Symbol (ESM, in its temporal dead zone at the header)',
    type: 'module',
    files: {
      'lib.js': shadowingEsm,
      'main.js': `import { price, Symbol as own } from './lib.js';\nconsole.log('globals', JSON.stringify([own]));\nconst p = price;\n${apply('p(3)')}`,
    },
    entry: 'main.js',
    module: 'app/lib.js',
    func: 'price',
    lib: shadowingEsm,
  },
  {
    name: 'a constructor in a module with its own Reflect',
    type: 'commonjs',
    files: {
      'lib.js': constructorLib,
      'main.js': `const { price } = require('./lib.js');\n(async () => {\n${apply('price(3)')}})();\n`,
    },
    entry: 'main.js',
    module: 'app/lib.js',
    func: 'Price',
    lib: constructorLib,
    replacement: 'class { constructor(n) { this.value = n * 100; } }',
  },
  {
    name: 'a function past the 500th, in a module with its own Object',
    type: 'commonjs',
    files: {
      'lib.js': bigLib,
      'main.js': `const { price } = require('./lib.js');\n(async () => {\n${apply('price(3)')}})();\n`,
    },
    entry: 'main.js',
    module: 'app/lib.js',
    func: 'price',
    lib: bigLib,
  },
  {
    name: 'ESM',
    type: 'module',
    files: {
      'lib.js': esmLib,
      'main.js': `import { price } from './lib.js';\nconst p = price;\n${apply('p(3)')}`,
    },
    entry: 'main.js',
    module: 'app/lib.js',
    func: 'price',
    lib: esmLib,
  },
  {
    name: 'CommonJS, destructured before the patch',
    type: 'module',
    files: {
      'lib.cjs': cjsLib,
      'main.js': `import { createRequire } from 'node:module';\nconst { price } = createRequire(import.meta.url)('./lib.cjs');\n${apply('price(3)')}`,
    },
    entry: 'main.js',
    module: 'app/lib.cjs',
    func: 'price',
    lib: cjsLib,
  },
  {
    name: 'a dependency named in package.json',
    type: 'module',
    pkg: { livepatch: { instrument: ['pricing'] } },
    files: {
      'node_modules/pricing/package.json': JSON.stringify({ name: 'pricing', main: 'index.js' }),
      'node_modules/pricing/index.js': cjsLib,
      'main.js': `import pricing from 'pricing';\nconst p = pricing.price;\n${apply('p(3)')}`,
    },
    entry: 'main.js',
    module: 'pricing/index.js',
    func: 'price',
    lib: cjsLib,
  },
  ...(['module', 'commonjs'] as const).map((type): Case => ({
    name: `tsx (${type})`,
    type,
    files: {
      'lib.ts': tsLib,
      // tsx compiles CommonJS .ts with top-level await unavailable: the application part runs in an async IIFE.
      'main.ts': `import { price } from './lib.ts';\nconst p = price;\n(async () => {\n${apply('p(3)')}})();\n`,
    },
    entry: 'main.ts',
    module: 'app/lib.ts',
    func: 'price',
    lib: tsLib,
    // esbuild's CommonJS output starts with `__export(lib_exports, { price: () => price })`: that getter is
    // also named 'price' (sympos 1), so the function itself is sympos 2.
    sympos: type === 'commonjs' ? 2 : 0,
    before: tsx,
  })),
  // Node's own type stripping (`node main.ts`), no transpiler: the types are blanked out in place. An ES module in
  // a package that says so, and in one with no "type" (Node's syntax detection decides).
  ...[
    ['module', 'module'],
    [undefined, 'no "type": detected as ES module'],
  ].map(([type, what]): Case => ({
    name: `Node's type stripping (${what})`,
    type: type as Case['type'],
    files: {
      'lib.ts': tsLib,
      'main.ts': `import { price } from './lib.ts';\nconst p = price;\n${apply('p(3)')}`,
    },
    entry: 'main.ts',
    module: 'app/lib.ts',
    func: 'price',
    lib: tsLib,
    skip: !stripsTypes,
  })),
  {
    name: "Node's type stripping (CommonJS .cts, required by a .ts entry)",
    type: 'commonjs',
    files: {
      'lib.cts': ctsLib,
      'main.ts': `const { price } = require('./lib.cts');\nconst p = price;\n(async () => {\n${apply('p(3)')}})();\n`,
    },
    entry: 'main.ts',
    module: 'app/lib.cts',
    func: 'price',
    lib: ctsLib,
    skip: !stripsTypes,
  },
];

for (const c of cases) {
  test(`patching through the loader: ${c.name}`, { skip: c.skip === true }, async (t) => {
    const p = tmpProject({
      'app/package.json': JSON.stringify({ name: 'app', type: c.type, ...c.pkg }),
      ...Object.fromEntries(Object.entries(c.files).map(([k, v]) => [`app/${k}`, v])),
      'patch/fix.mjs': patch(
        c.module,
        c.func,
        c.sympos ?? 0,
        sha(c.lib),
        c.replacement ?? 'function () { return arguments[0] * 100; }',
      ),
    });
    t.after(p.cleanup);
    const r = await runApp(join(p.dir, 'app'), [c.entry], {}, { before: c.before ?? [] });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.warnings, []);
    assert.match(r.out, /^result 6 300$/m, r.out + r.err);
    // The module saw its own declarations, not the globals.
    const globals = /^globals (.*)$/m.exec(r.out)?.[1];
    if (c.lib === shadowingLib) assert.equal(globals, '["undefined","object",null,"mine"]');
    if (c.lib === shadowingEsm) assert.equal(globals, '["mine"]');
  });
}
