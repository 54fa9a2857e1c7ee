// Part of `npm run build`, after tsc: makes dist/src/loader/register.js (what `livepatch/register` loads before the
// app's first line) one file, with the runtime, the loader and the control server it imports in it. As the 33 ES
// modules tsc makes of it, it cost every start ~15 ms more CPU on Node 22 and 24 and ~19 ms on Node 20 (docs/loader.md).
// The modules stay beside it for everything else: the Node 20 hooks thread, the CLI, the instrumenter (loaded on the
// first cache miss, by path), and `livepatch` itself, which patch modules import.
//
// tsc rewrites register.js at every build, so the input is always its module; bundling it twice gives the same file.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const entry = join(root, 'dist/src/loader/register.js');

const result = await build({
  entryPoints: [entry],
  outfile: entry,
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
