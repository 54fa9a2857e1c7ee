// Tests for reading .ko files without modinfo: the .modinfo section, the signature trailer, and malformed files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseModule, readModule } from '../../src/kernel/modinfo.js';
import { isLivepatchError } from '../../src/errors.js';
import { repoRoot } from '../helpers.js';
import { livepatchModinfo, makeModule } from './fake-system.js';

test('reads name, livepatch flag, vermagic and release from .modinfo', () => {
  const m = parseModule(makeModule(livepatchModinfo('livepatch_cmdline')), 'lp.ko');
  assert.equal(m.name, 'livepatch_cmdline');
  assert.equal(m.livepatch, true);
  assert.equal(m.vermagic, '6.1.0-56-amd64 SMP preempt mod_unload modversions ');
  assert.equal(m.release, '6.1.0-56-amd64');
  assert.equal(m.signature, null);
  assert.deepEqual(m.modinfo.depends, ['']);
});

test('keeps repeated keys in order and falls back to the file name for the module name', () => {
  const m = parseModule(
    makeModule([
      ['alias', 'a1'],
      ['alias', 'a2'],
      ['vermagic', '6.1.0 SMP'],
    ]),
    '/x/my-module.ko',
  );
  assert.deepEqual(m.modinfo.alias, ['a1', 'a2']);
  assert.equal(m.name, 'my_module');
  assert.equal(m.livepatch, false);
});

test('reads a big-endian ELF and a gzip-compressed module', () => {
  const be = parseModule(makeModule(livepatchModinfo('p_be'), { bigEndian: true }), 'be.ko');
  assert.equal(be.name, 'p_be');
  const gz = parseModule(gzipSync(makeModule(livepatchModinfo('p_gz'))), 'gz.ko.gz');
  assert.equal(gz.name, 'p_gz');
});

test('finds the appended signature and still reads the ELF before it', () => {
  const m = parseModule(makeModule(livepatchModinfo('signed_patch'), { signed: true }), 's.ko');
  assert.deepEqual(m.signature, { id_type: 2, sig_len: 256 });
  assert.equal(m.name, 'signed_patch');
});

const malformed: [string, Buffer, RegExp][] = [
  [
    'not an ELF file',
    Buffer.from('#!/bin/sh\necho hi\n'.padEnd(80)),
    /is not a kernel module: no ELF header/,
  ],
  ['an ELF without .modinfo', makeModule([], { section: '.data' }), /has no '.modinfo' section/],
  [
    'a truncated ELF',
    makeModule(livepatchModinfo('t')).subarray(0, 90),
    /truncated ELF file|runs past the end/,
  ],
  ['xz-compressed', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ...Array(60).fill(0)]), /xz-compressed/],
];
for (const [what, bytes, message] of malformed) {
  test(`refuses ${what} with 'EINVAL'`, () => {
    assert.throws(
      () => parseModule(bytes, 'bad.ko'),
      (e) => isLivepatchError(e) && e.code === 'EINVAL' && message.test(e.message),
    );
  });
}

test('a missing file is ENOENT and names the file', () => {
  assert.throws(
    () => readModule('/nonexistent/x.ko'),
    (e) => isLivepatchError(e) && e.code === 'ENOENT' && e.message.includes("'/nonexistent/x.ko'"),
  );
});

// Cross-check against kmod's modinfo on real modules when both are on this machine (they are after the
// kernel end-to-end test's apt-get; elsewhere this is skipped).
const realModules = [join(repoRoot, 'kernel/livepatch-cmdline/livepatch-cmdline.ko')];
const modulesDir = '/lib/modules';
if (existsSync(modulesDir)) {
  for (const r of readdirSync(modulesDir)) {
    const dir = join(modulesDir, r, 'kernel/lib');
    if (existsSync(dir))
      realModules.push(
        ...readdirSync(dir)
          .filter((f) => f.endsWith('.ko'))
          .slice(0, 3)
          .map((f) => join(dir, f)),
      );
  }
}
const hasModinfo = spawnSync('modinfo', ['--version']).status === 0;
for (const file of realModules) {
  test(
    `agrees with modinfo on ${file}`,
    { skip: !hasModinfo || !existsSync(file) ? 'modinfo or the module missing' : false },
    () => {
      const ours = readModule(file);
      const field = (f: string) =>
        spawnSync('modinfo', ['-F', f, file], { encoding: 'utf8' }).stdout.replace(/\n$/, '');
      assert.equal(ours.vermagic, field('vermagic'));
      assert.equal(ours.name, field('name'));
      assert.equal(ours.livepatch, field('livepatch') === 'Y');
      assert.equal(ours.signature !== null, field('signer') !== '');
    },
  );
}
