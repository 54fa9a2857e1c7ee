// Tests for the `livepatch kernel` command line: usage errors (exit 2), help, info, and the standalone entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { distRoot, spawnNode } from '../helpers.js';
import { FakeSystem, kernel, livepatchModinfo, makeModule } from './fake-system.js';

const usageErrors: [string[], RegExp][] = [
  [[], /missing command/],
  [['frobnicate'], /unknown command 'frobnicate'/],
  [['load'], /'load' needs MODULE\.ko/],
  [['list', 'extra'], /unexpected argument 'extra'/],
  [['list', '--bogus'], /Unknown option '--bogus'/],
  [['load', 'x.ko', '--timeout', 'soon'], /--timeout expects seconds, got 'soon'/],
];
for (const [argv, message] of usageErrors) {
  test(`bad usage exits 2: ${argv.join(' ') || '(nothing)'}`, async () => {
    const r = await kernel(argv);
    assert.equal(r.code, 2);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /usage: livepatch kernel <command>/);
  });
}

test('--help prints the usage on stdout and exits 0', async () => {
  const r = await kernel(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: livepatch kernel <command> \[options\]/);
});

test('info shows what the module is and how it fits the running kernel', async (t) => {
  const sys = new FakeSystem({ release: '6.1.0-99-amd64', sigEnforce: true });
  t.after(sys.cleanup);
  const file = sys.path('lp-info.ko');
  writeFileSync(file, makeModule(livepatchModinfo('lp_info'), { signed: true }));
  const r = await kernel(['info', file, '--json', ...sys.args]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.json();
  assert.equal(out.name, 'lp_info');
  assert.equal(out.livepatch, true);
  assert.equal(out.kernel, '6.1.0-99-amd64');
  assert.equal(out.vermagicMatches, false);
  assert.equal(out.signed, true);
  assert.equal(out.sigEnforced, true);
  assert.equal(out.loaded, false);
  const text = await kernel(['info', file, ...sys.args]);
  assert.match(text.stdout, /^Patch information for .*lp-info\.ko:\n {2}name: {9}lp_info\n/);
  assert.match(text.stdout, /running kernel: {3}6\.1\.0-99-amd64 \(does not match '6\.1\.0-56-amd64'\)/);
  assert.match(text.stdout, /signed: {11}yes \(256-byte PKCS#7 signature\)/);
});

test('node dist/src/kernel/cli.js runs on its own and sets the exit code', async (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'lp_standalone', stack_order: 1 });
  const cli = join(distRoot, 'src/kernel/cli.js');
  const ok = spawnNode([cli, 'list', '--json', ...sys.args]);
  t.after(ok.kill);
  assert.equal(await ok.exited, 0, ok.stderr());
  assert.equal(JSON.parse(ok.stdout()).patches[0].name, 'lp_standalone');
  const bad = spawnNode([cli, 'enable', 'missing', ...sys.args]);
  t.after(bad.kill);
  assert.equal(await bad.exited, 1);
  assert.equal(bad.stderr(), "livepatch kernel: error: no such patch 'missing'\n");
});
