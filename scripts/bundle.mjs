// Part of `npm run build`, after tsc: makes dist/src/loader/register.js (what `livepatch/register` loads before the
// app's first line) one file, with the runtime, the loader and the control server it imports in it; and the same of
// hooks-async.js, which Node 20's hooks thread starts from. As the 33 ES modules tsc makes of it, register.js cost
// every start ~15 ms more CPU on Node 22 and 24 and ~19 ms on Node 20; hooks-async.js as modules another ~8 ms on
// Node 20 (docs/loader.md). The modules stay beside them for everything else: the CLI, the instrumenter (loaded on
// the first cache miss, by path), and `livepatch` itself, which patch modules import.
//
// tsc rewrites both files at every build, so the input is always their modules; bundling twice gives the same files.
import { build } from 'esbuild';
import * as acorn from 'acorn';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const loader = join(root, 'dist/src/loader');

// An ES module's `import … from 'node:fs'` makes Node build the builtin's ES module facade, which reads every
// export once, lazy ones too: importing node:fs loads fs/promises, readline and the streams, node:crypto loads
// webcrypto: modules a small app would not load, several ms of CPU at every start (docs/loader.md); and a
// deprecated export warns. Here a builtin is taken from process.getBuiltinModule (20.16+, 22.3+), which is its CommonJS
// exports object, and exactly the names the code imports from it are read from that object: named imports, and the
// properties read off a namespace import (`nodeModule.registerHooks`, undefined where Node lacks it, as before).
function builtinImports(files) {
  const names = new Map(); // 'node:fs' → Set of names ('default' for a default import)
  const use = (spec) => names.get(spec) ?? names.set(spec, new Set()).get(spec);
  for (const file of files) {
    const ast = acorn.parse(readFileSync(file, 'utf8'), { ecmaVersion: 'latest', sourceType: 'module' });
    const namespaces = new Map(); // local name → builtin
    for (const node of ast.body) {
      if (node.type !== 'ImportDeclaration' || !node.source.value.startsWith('node:')) continue;
      for (const s of node.specifiers) {
        if (s.type === 'ImportSpecifier') use(node.source.value).add(s.imported.name);
        else if (s.type === 'ImportDefaultSpecifier') use(node.source.value).add('default');
        else namespaces.set(s.local.name, node.source.value);
      }
    }
    // Every use of a namespace must be `ns.name`: anything else would need the whole object's names. A dynamic
    // import() of a builtin would get only the names imported elsewhere: process.getBuiltinModule says what it means.
    const walk = (node, parent) => {
      if (node === null || typeof node !== 'object') return;
      if (Array.isArray(node)) return node.forEach((n) => walk(n, parent));
      if (node.type === 'ImportExpression' && /^node:/.test(node.source.value ?? '')) {
        throw new Error(`bundle: ${file}: import('${node.source.value}'): use process.getBuiltinModule`);
      }
      if (
        node.type === 'Identifier' &&
        namespaces.has(node.name) &&
        parent?.type !== 'ImportNamespaceSpecifier'
      ) {
        if (parent?.type !== 'MemberExpression' || parent.object !== node || parent.computed) {
          throw new Error(
            `bundle: ${file}: namespace '${node.name}' is used other than as '${node.name}.name'`,
          );
        }
        use(namespaces.get(node.name)).add(parent.property.name);
      }
      for (const [k, v] of Object.entries(node)) if (k !== 'type' && typeof v === 'object') walk(v, node);
    };
    walk(ast, null);
  }
  return names;
}

const builtinsByGetter = {
  name: 'builtins-by-getter',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => {
      const names = [...(imported.get(args.path) ?? [])].filter((n) => n !== 'default');
      return {
        contents:
          // Node before 20.16 has no getBuiltinModule: every name is then undefined, and register.ts says that
          // Node is too old before it uses any (the app runs as is).
          `const m = process.getBuiltinModule?.(${JSON.stringify(args.path)}) ?? {};\n` +
          `export default m;\nexport const { ${names.join(', ')} } = m;\n`,
        loader: 'js',
      };
    });
  },
};

const options = {
  // Node 20's hooks thread starts from hooks-async.js: bundled too, it is one file to load there as well.
  entryPoints: [join(loader, 'register.js'), join(loader, 'hooks-async.js')],
  outdir: loader,
  entryNames: '[name]',
  allowOverwrite: true,
  bundle: true,
  // The register path needs Node alone; a package reached by mistake stays an import rather than a copy.
  packages: 'external',
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  // tsc's maps are read and composed: a stack through the loader names the .ts line.
  sourcemap: 'linked',
  sourcesContent: false,
  metafile: true,
  logLevel: 'warning',
  logOverride: { 'import-is-undefined': 'error' },
  banner: {
    js: '// Bundled by scripts/bundle.mjs from the modules beside this file (tsc output); see docs/loader.md.',
  },
};
// A first pass, written nowhere, finds the modules that go in: the names they import from builtins are what the
// second pass reads off each builtin.
const probe = await build({ ...options, write: false });
const imported = builtinImports(Object.keys(probe.metafile.inputs).map((input) => join(root, input)));
const result = await build({ ...options, plugins: [builtinsByGetter] });

// Paths made from import.meta.url (the cache's package.json, hooks-async.js, the instrumenter) now start from this
// file. They stay right only for modules at the same depth, dist/src/<dir>/: refuse to build anything else.
const problems = [];
for (const input of Object.keys(result.metafile.inputs)) {
  if (input.startsWith('builtin:')) continue;
  const rel = relative(join(root, 'dist/src'), join(root, input));
  if (rel.split(sep).length !== 2 && readFileSync(join(root, input), 'utf8').includes('import.meta')) {
    problems.push(`${input} uses import.meta but is not in dist/src/<dir>/`);
  }
}
if (problems.length > 0) {
  console.error(`bundle: ${problems.join('\n')}`);
  process.exit(1);
}
