// Part of `npm run build`, after tsc: makes dist/src/loader/register.js (what `livepatch/register` loads before the
// app's first line) one file, with the runtime, the loader and the control server it imports in it; and the same of
// hooks-async.js, which Node 20's hooks thread starts from. As the 33 ES modules tsc makes of it, register.js cost
// every start ~15 ms more CPU on Node 22 and 24 and ~19 ms on Node 20; hooks-async.js as modules another ~8 ms on
// Node 20 (docs/loader.md). The modules stay beside them for everything else: the CLI, the instrumenter (loaded on
// the first cache miss, by path), and `livepatch` itself, which patch modules import.
//
// tsc rewrites both files at every build, so the input is always their modules; bundling twice gives the same files.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const loader = join(root, 'dist/src/loader');

const result = await build({
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
  banner: {
    js: '// Bundled by scripts/bundle.mjs from the modules beside this file (tsc output); see docs/loader.md.',
  },
});

// Paths made from import.meta.url (the cache's package.json, hooks-async.js, the instrumenter) now start from this
// file. They stay right only for modules at the same depth, dist/src/<dir>/: refuse to build anything else.
const problems = [];
for (const input of Object.keys(result.metafile.inputs)) {
  const rel = relative(join(root, 'dist/src'), join(root, input));
  if (rel.split(sep).length !== 2 && readFileSync(join(root, input), 'utf8').includes('import.meta')) {
    problems.push(`${input} uses import.meta but is not in dist/src/<dir>/`);
  }
}
if (problems.length > 0) {
  console.error(`bundle: ${problems.join('\n')}`);
  process.exit(1);
}
