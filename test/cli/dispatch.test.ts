// `livepatch build …` and `livepatch kernel …` reach the builder and the kernel manager through the one command.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { FakeSystem } from '../kernel/fake-system.js';
import { cliEntry, tmpProject } from '../helpers.js';

function livepatch(args: string[]) {
  return spawnSync(process.execPath, [cliEntry, ...args], { encoding: 'utf8', timeout: 30_000 });
}

test('livepatch kernel list reads the sysfs tree it is pointed at', (t) => {
  const sys = new FakeSystem();
  t.after(sys.cleanup);
  sys.addPatch({ name: 'livepatch_cmdline' });
  const r = livepatch(['kernel', 'list', '--json', ...sys.args]);
  assert.equal(r.status, 0, r.stderr);
  const tree = JSON.parse(r.stdout);
  assert.equal(tree.patches[0].name, 'livepatch_cmdline');
  assert.deepEqual(tree.patches[0].objects[0].funcs, [{ name: 'cmdline_proc_show', sympos: 1 }]);
});

test('livepatch kernel keeps its own exit codes: a kernel without livepatch fails with 1', (t) => {
  const sys = new FakeSystem({ livepatch: false });
  t.after(sys.cleanup);
  const r = livepatch(['kernel', 'list', ...sys.args]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no livepatch support/);
});

test('livepatch build --dry-run analyses two trees', (t) => {
  const pkg = JSON.stringify({ name: 'shop', version: '1.0.0', main: 'index.js' });
  const oldTree = tmpProject({
    'package.json': pkg,
    'index.js': 'exports.total = function total(a, b) { return a + b; };\n',
  });
  const newTree = tmpProject({
    'package.json': pkg,
    'index.js': 'exports.total = function total(a, b) { return Math.max(0, a + b); };\n',
  });
  t.after(() => (oldTree.cleanup(), newTree.cleanup()));
  const r = livepatch(['build', '--old', oldTree.dir, '--new', newTree.dir, '--dry-run']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /exports\.total/);
  assert.match(r.stdout + r.stderr, /changed/);
});

test('livepatch build with bad usage exits 2', () => {
  const r = livepatch(['build', '--old']);
  assert.equal(r.status, 2);
});
