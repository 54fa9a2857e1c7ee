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
const patch = (module: string, func: string, sympos: number, hash: string, body: string) =>
  `import { defineLivepatch } from 'livepatch';
export default defineLivepatch({ name: 'fix', objects: [{ module: '${module}', hash: '${hash}',
  funcs: [{ name: '${func}', sympos: ${sympos}, replacement: function () { ${body} } }] }] });
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
}

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/** Node runs .ts files itself (type stripping on by default): 22.18+, 23.6+. */
const stripsTypes = major > 22 || (major === 22 && minor >= 18);
const ctsLib = `function price(n: number): number {\n  return n * 2;\n}\nmodule.exports = { price };\n`;

const esmLib = `export function price(n) {\n  return n * 2;\n}\n`;
const cjsLib = `function price(n) {\n  return n * 2;\n}\nmodule.exports = { price };\n`;
const tsLib = `export function price(n: number): number {\n  return n * 2;\n}\n`;
const cases: Case[] = [
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
      'patch/fix.mjs': patch(c.module, c.func, c.sympos ?? 0, sha(c.lib), 'return arguments[0] * 100;'),
    });
    t.after(p.cleanup);
    const r = await runApp(join(p.dir, 'app'), [c.entry], {}, { before: c.before ?? [] });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.warnings, []);
    assert.match(r.out, /^result 6 300$/m, r.out + r.err);
  });
}
