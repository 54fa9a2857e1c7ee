// Unit tests of the control server's pure parts: framing, directory checks, signatures, patch names, fix ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame, FrameDecoder, MAX_FRAME } from '../../src/control/frame.js';
import { checkPrivateDir, checkTrustedFile, controlDir } from '../../src/control/paths.js';
import { checkPatchName, fixesOf } from '../../src/control/patches.js';
import { generateKeys, parseSignature, signSource, verifySource } from '../../src/control/trust.js';
import { createPublicKey } from 'node:crypto';
import { parseArgs, UsageError } from '../../src/cli/args.js';

test('frames survive any split of the byte stream', () => {
  const msgs = [{ a: 1 }, 'x', [1, 2, { b: 'ü' }], null, { big: 'z'.repeat(5_000) }];
  const bytes = Buffer.concat(msgs.map((m) => encodeFrame(m)));
  for (const step of [1, 3, 4, 5, 7, 1000, bytes.length]) {
    const d = new FrameDecoder();
    const out: unknown[] = [];
    for (let i = 0; i < bytes.length; i += step)
      for (const f of d.push(bytes.subarray(i, i + step))) out.push(f.kind === 'message' ? f.value : f);
    assert.deepEqual(out, msgs, `split every ${step} bytes`);
    assert.equal(d.pending, 0);
  }
});

test('a frame that is not JSON is reported and the stream goes on', () => {
  const bad = Buffer.from('{nope');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(bad.length);
  const d = new FrameDecoder();
  const out = d.push(Buffer.concat([head, bad, encodeFrame({ ok: 1 })]));
  assert.equal(out[0]?.kind, 'malformed');
  assert.deepEqual(out[1], { kind: 'message', value: { ok: 1 } });
});

test('an oversized length prefix is refused before its body arrives', () => {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(MAX_FRAME + 1);
  const d = new FrameDecoder();
  const out = d.push(Buffer.concat([encodeFrame(1), head, encodeFrame(2)]));
  assert.deepEqual(out[0], { kind: 'message', value: 1 });
  assert.equal(out[1]?.kind, 'oversized');
  assert.match(out[1]?.kind === 'oversized' ? out[1].error.message : '', /exceeds the limit/);
  assert.equal(out.length, 2);
  assert.deepEqual(d.push(encodeFrame(3)), [], 'nothing after an oversized frame');
  assert.throws(() => encodeFrame('x'.repeat(MAX_FRAME)), { code: 'EPROTO' });
});

test('control directory: XDG_RUNTIME_DIR, else a per-uid directory under tmp', () => {
  assert.equal(controlDir({ XDG_RUNTIME_DIR: '/run/user/7' }), '/run/user/7/livepatch');
  assert.match(controlDir({}), /\/livepatch-\d+$/);
  assert.match(controlDir({ XDG_RUNTIME_DIR: 'relative' }), /\/livepatch-\d+$/);
});

test('checkPrivateDir refuses what another user could write into', () => {
  const dir = (mode: number, uid: number, isDir = true) => ({
    isDirectory: () => isDir,
    mode: 0o40000 | mode,
    uid,
  });
  const cases: [string, ReturnType<typeof dir>, RegExp | null][] = [
    ['0700 mine', dir(0o700, 1000), null],
    ['0755 mine', dir(0o755, 1000), null],
    ['0770 group-writable', dir(0o770, 1000), /writable by group or others \(mode 770\)/],
    ['0703 other-writable', dir(0o703, 1000), /writable by group or others/],
    ['owned by uid 0', dir(0o700, 0), /owned by uid 0, not by this user \(uid 1000\)/],
    ['a symlink', dir(0o777, 1000, false), /not a directory/],
  ];
  for (const [what, st, err] of cases) {
    if (err === null) assert.doesNotThrow(() => checkPrivateDir('/d', st, 1000), what);
    else assert.throws(() => checkPrivateDir('/d', st, 1000), { code: 'EPERM', message: err }, what);
  }
  // An install directory an administrator prepared (root's, 0755) is trusted for reading; a third user's is not.
  assert.doesNotThrow(() => checkPrivateDir('/d', dir(0o755, 0), 1000, true));
  assert.throws(() => checkPrivateDir('/d', dir(0o755, 1001), 1000, true), { code: 'EPERM' });
  assert.throws(() => checkPrivateDir('/d', dir(0o775, 0), 1000, true), { code: 'EPERM' });
});

test("checkTrustedFile: a regular file, ours or root's, writable by nobody else", () => {
  const file = (mode: number, uid: number, isFile = true) => ({
    isFile: () => isFile,
    mode: 0o100000 | mode,
    uid,
  });
  assert.doesNotThrow(() => checkTrustedFile('/f', file(0o600, 1000), 1000));
  assert.doesNotThrow(() => checkTrustedFile('/f', file(0o644, 0), 1000));
  assert.throws(() => checkTrustedFile('/f', file(0o666, 1000), 1000), {
    message: /writable by group or others/,
  });
  assert.throws(() => checkTrustedFile('/f', file(0o600, 1001), 1000), { message: /owned by uid 1001/ });
  assert.throws(() => checkTrustedFile('/f', file(0o600, 1000, false), 1000), {
    message: /not a regular file/,
  });
});

test('patch names: [a-z0-9_-] only, no path tricks', () => {
  for (const ok of ['fix-1', 'a', 'cve_2026_0001', 'x'.repeat(64)]) assert.equal(checkPatchName(ok), ok);
  for (const bad of ['../evil', 'a/b', '', 'Fix', 'x'.repeat(65), 'a.b', '..', 'a\0b', 7, null])
    assert.throws(() => checkPatchName(bad), { code: 'EINVAL', message: /invalid patch name/ }, String(bad));
});

test('signatures: good, tampered, unknown key, unsigned, junk', () => {
  const a = generateKeys();
  const b = generateKeys();
  const keys = new Map([[a.id, createPublicKey(a.publicPem)]]);
  const src = Buffer.from('export default 1;\n');
  const sig = JSON.stringify(signSource(src, a.privatePem));
  assert.equal(verifySource(src, sig, keys), a.id);
  assert.throws(() => verifySource(Buffer.from('export default 2;\n'), sig, keys), {
    code: 'EPERM',
    message: /changed after it was signed/,
  });
  const forged = { ...parseSignature(sig), sha256: parseSignature(sig).sha256 };
  forged.sig = Buffer.alloc(64).toString('base64');
  assert.throws(() => verifySource(src, JSON.stringify(forged), keys), {
    code: 'EPERM',
    message: /bad signature/,
  });
  assert.throws(() => verifySource(src, JSON.stringify(signSource(src, b.privatePem)), keys), {
    code: 'EPERM',
    message: new RegExp(`signed by key '${b.id}', which is not trusted`),
  });
  assert.throws(() => verifySource(src, undefined, keys), { code: 'EPERM', message: /not signed/ });
  assert.throws(() => verifySource(src, 'garbage', keys), {
    code: 'EPERM',
    message: /not a livepatch signature/,
  });
  assert.throws(() => signSource(src, a.publicPem), { code: 'EINVAL' });
});

test('fix ids come from @livepatch-fixes comments', () => {
  assert.deepEqual(fixesOf(Buffer.from('// @livepatch-fixes CVE-2026-1, SHOP-2\nexport default 1')), [
    'CVE-2026-1',
    'SHOP-2',
  ]);
  assert.deepEqual(fixesOf(Buffer.from('/* @livepatch-fixes A */\n')), ['A']);
  assert.deepEqual(fixesOf(Buffer.from('export default 1')), []);
});

test('CLI arguments: options anywhere, values checked, -- ends options', () => {
  const p = parseArgs(['load', 'fix.js', '--pid', '12', '--json', '--timeout=2.5']);
  assert.equal(p.command, 'load');
  assert.deepEqual(p.positionals, ['fix.js']);
  assert.deepEqual([p.options.pid, p.options.json, p.options.timeout], [[12], true, 2.5]);
  assert.deepEqual(parseArgs(['run', '--name', 'x', '--', 'node', '--pid', 'a.js']).options.rest, [
    'node',
    '--pid',
    'a.js',
  ]);
  for (const bad of [
    ['--pid', 'x'],
    ['--pid', '0'],
    ['--timeout', '-1'],
    ['--bogus'],
    ['--json=1'],
    ['--pid'],
  ])
    assert.throws(() => parseArgs(bad), UsageError, bad.join(' '));
});
