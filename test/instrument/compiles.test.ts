// What V8 compiles, it compiles instrumented: every .js/.cjs/.mjs file installed for this repository (~3,500, from
// ~260 packages and their dependencies), as Node would load it. A module whose instrumented text V8 refused would
// fail to load under the loader, where it loads without; acorn accepting the output is not the same test.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { distRoot, fixture, repoRoot, spawnNode } from '../helpers.js';

test('every installed JavaScript file that V8 compiles also compiles instrumented', async (t) => {
  const child = spawnNode([
    '--experimental-vm-modules',
    '--no-warnings',
    fixture('instrument/compile-sweep.mjs'),
    join(distRoot, 'src/instrument/index.js'),
    join(repoRoot, 'node_modules'),
  ]);
  assert.equal(await child.exited, 0, child.stderr());
  const r = JSON.parse(child.stdout()) as {
    files: number;
    compiled: number;
    notJavaScript: number;
    refused: string[];
    broken: string[];
  };
  t.diagnostic(
    `${r.files} files: ${r.compiled} compiled instrumented, ${r.notJavaScript} not JavaScript V8 takes`,
  );
  assert.ok(r.compiled > 3000, `only ${r.compiled} files compiled`);
  assert.deepEqual(r.broken, []);
  assert.deepEqual(r.refused, []);
});
