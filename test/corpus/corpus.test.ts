// Three fast cases of the corpus of real fixes, run by scripts/corpus.mjs exactly as `npm run corpus` runs them:
// each must still be patched automatically under load, with no failed request, or this test fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';

interface Row {
  case: string;
  result: string;
  reason: string;
  requests: number;
  failedRequests: number;
}

// One CommonJS prototype pollution with a helper carried into the patch, one ReDoS whose fix replaces a regular
// expression with a loop, one ESM package.
const cases = ['minimist', 'trim-newlines', 'dset'];

function runCorpus(names: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(
      process.execPath,
      [join(repoRoot, 'scripts/corpus.mjs'), '--json', '--timeout', '60', ...names],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test('corpus: minimist, trim-newlines and dset are patched automatically under load', async (t) => {
  const r = await runCorpus(cases);
  const rows = (JSON.parse(r.stdout) as { rows: Row[] }).rows;
  if (rows.some((row) => /cannot (fetch|install)/.test(row.reason)))
    return t.skip(`registry unreachable: ${rows.map((row) => row.reason).join('; ')}`);
  assert.deepEqual(
    rows.map((row) => row.case),
    [...cases].sort(),
  );
  for (const row of rows) {
    assert.equal(row.result, 'patched automatically', `${row.case}: ${row.reason}`);
    assert.ok(row.requests > 0, `${row.case}: the load sent requests`);
    assert.equal(row.failedRequests, 0, `${row.case}: no request failed`);
  }
  assert.equal(r.code, 0, r.stderr);
});
