// Real code, unmodified: real npm packages' own test suites give the same results with the package instrumented by
// the loader, and one function of each can be patched through the runtime while the answers stay the same.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { distRoot, fixture, registerEntry } from '../helpers.js';
import { cleanEnv, preparePackage, runSuite } from './harness.js';
import { packages, type RealPackage } from './packages.js';

const selected = packages.filter((p) => p.ci || process.env.LIVEPATCH_REALWORLD_ALL === '1');

for (const p of selected) {
  test(`${p.name}@${p.version}: its own test suite gives identical results instrumented`, async (t) => {
    const prep = preparePackage(p);
    if (!prep.ok) {
      t.skip(prep.skip);
      return;
    }
    const plain = await runSuite(p, prep.dir, prep.pkgDir, { instrument: false });
    const inst = await runSuite(p, prep.dir, prep.pkgDir, { instrument: true });
    t.diagnostic(
      `plain: ${plain.pass} pass, ${plain.fail} fail, ${plain.ms.toFixed(0)} ms; instrumented: ${inst.pass} pass, ` +
        `${inst.fail} fail, ${inst.ms.toFixed(0)} ms; ${inst.modules} modules, ${inst.funcs} functions registered ` +
        `in ${inst.processes} processes`,
    );
    assert.ok(plain.pass > 0, `the suite ran no assertion uninstrumented:\n${plain.output.slice(-2000)}`);
    assert.equal(plain.modules, 0, 'nothing registers without the loader');
    const summary = (r: typeof plain) => ({
      exitCode: r.exitCode,
      pass: r.pass,
      fail: r.fail,
      failures: r.failures,
    });
    assert.deepEqual(summary(inst), summary(plain), `instrumented output:\n${inst.output.slice(-3000)}`);
    // The loader really instrumented the package: every process had a registry, and the package's own modules
    // (not only its test files) registered functions.
    assert.ok(
      inst.processes > 0 && inst.registryProcesses === inst.processes,
      'a process ran without the registry',
    );
    assert.ok(inst.funcs > 0, 'no function was instrumented');
    const own = inst.ids.filter(
      (id) => id.startsWith(`${p.name}/`) && !id.startsWith(`${p.name}/${p.testDir}/`),
    );
    assert.ok(own.length > 0, `none of ${p.name}'s own modules registered (got ${inst.ids.join(', ')})`);
  });

  if (p.readsSourceText === true) {
    test(`${p.name}@${p.version}: its suite fails when toString shows the prologues (LIVEPATCH_SOURCE_TEXT=instrumented)`, async (t) => {
      const prep = preparePackage(p);
      if (!prep.ok) {
        t.skip(prep.skip);
        return;
      }
      const raw = await runSuite(p, prep.dir, prep.pkgDir, {
        instrument: true,
        env: { LIVEPATCH_SOURCE_TEXT: 'instrumented' },
      });
      assert.ok(raw.funcs > 0, 'no function was instrumented');
      assert.ok(raw.fail > 0, `the suite passed with V8's instrumented text:\n${raw.output.slice(-2000)}`);
    });
  }

  test(`${p.name}@${p.version}: '${p.patch.func}' in '${p.patch.module}' patched through the runtime`, async (t) => {
    const prep = preparePackage(p);
    if (!prep.ok) {
      t.skip(prep.skip);
      return;
    }
    const r = await patchOne(p, prep.pkgDir);
    assert.equal(r.code, 0, r.output);
    const line = r.output.trim().split('\n').at(-1) ?? '';
    const got = JSON.parse(line) as Record<string, unknown>;
    assert.equal(got.instrumented, true, `'${p.patch.func}' is not in the symbol table: ${line}`);
    assert.equal(got.settled, true, 'the transition did not finish');
    assert.ok(Number(got.hitsPatched) > 0, `the replacement did not run: ${line}`);
    assert.equal(got.hitsAfterDisable, 0, `the replacement still ran after disable: ${line}`);
    assert.equal(got.same, true, `the answers changed: ${line}`);
  });
}

function patchOne(p: RealPackage, pkgDir: string): Promise<{ code: number | string; output: string }> {
  const cache = mkdtempSync(join(tmpdir(), 'lp-realworld-patch-'));
  const arg = JSON.stringify({ dist: distRoot, dir: pkgDir, ...p.patch });
  const env = cleanEnv({ LIVEPATCH_CACHE_DIR: cache });
  // The fixture lives in this repository, so the app root is the repository and the fetched package (under
  // .cache/, outside any node_modules) counts as the app's own code: instrumented without naming it.
  const args = ['--import', registerEntry, fixture('realworld', 'patch-one.mjs'), arg];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      rmSync(cache, { recursive: true, force: true });
      resolve({ code: code ?? signal ?? -1, output });
    });
  });
}
