// The on-disk cache of instrumented output: round trip, damaged entries, crash leftovers, a private tmp dir.
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { cacheKey, openCache, portableCrc32, SYMBOLS } from '../../src/loader/cache.js';
import { tmpProject } from '../helpers.js';

test('entries round-trip and damaged ones are ignored and removed', (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const cache = openCache(join(p.dir, 'c'), false);
  assert.ok(cache);
  const key = cacheKey(['v1', 'app/a.js', 'x']);
  assert.equal(cache.get(key), undefined);
  cache.set(key, 'const a = 1;\nmore\n');
  assert.equal(cache.get(key), 'const a = 1;\nmore\n');
  assert.deepEqual(readdirSync(cache.dir), [key], 'no temporary files left behind');
  const path = join(cache.dir, key);
  writeFileSync(path, readFileSync(path, 'utf8').replace('a = 1', 'a = 2'));
  assert.equal(cache.get(key), undefined, 'a modified entry is refused');
  assert.deepEqual(readdirSync(cache.dir), []);
  writeFileSync(path, 'garbage without a newline');
  assert.equal(cache.get(key), undefined);
  assert.notEqual(cacheKey(['v1', 'app/a.js', 'x']), cacheKey(['v2', 'app/a.js', 'x']));
});

test('a symbol table is stored in the entry of its code, after it, and read only by its own name', (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const cache = openCache(join(p.dir, 'c'), false);
  assert.ok(cache);
  const key = cacheKey(['table']);
  assert.equal(cache.set(key + SYMBOLS, '{"funcs":["é"]}'), true);
  assert.deepEqual(readdirSync(cache.dir), [], 'nothing is written before the code');
  assert.equal(cache.set(key, 'const s = "ü";\n'), true);
  assert.deepEqual(readdirSync(cache.dir), [key], 'one file, no temporary files left behind');
  assert.equal(cache.get(key), 'const s = "ü";\n');
  assert.equal(cache.get(key + SYMBOLS), '{"funcs":["é"]}');
  // Code stored without a table has none.
  const bare = cacheKey(['bare']);
  cache.set(bare, 'x;\n');
  assert.equal(cache.get(bare + SYMBOLS), undefined);
  // A size past the end of the body is damage, as a wrong sum is.
  const path = join(cache.dir, key);
  const text = readFileSync(path, 'utf8');
  writeFileSync(path, text.replace(/^(\S+ \S+ \S+) \d+ /, '$1 9999 '));
  assert.equal(cache.get(key + SYMBOLS), undefined);
  assert.deepEqual(readdirSync(cache.dir), [bare], 'a damaged entry is removed');
});

test('each part of an entry is checked when it is read, and ASCII code is marked so', (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const cache = openCache(join(p.dir, 'c'), false);
  assert.ok(cache);
  const ascii = cacheKey(['ascii']);
  cache.set(ascii + SYMBOLS, '{"funcs":[]}');
  cache.set(ascii, 'const a = "x";\n');
  const wide = cacheKey(['wide']);
  cache.set(wide, 'const s = "\u{1F600} \u00e9";\n');
  const header = (key: string) => readFileSync(join(cache.dir, key), 'latin1').split('\n', 1)[0]!.split(' ');
  assert.equal(header(ascii).at(-1), 'a');
  assert.equal(header(wide).at(-1), 'u');
  assert.equal(header(wide)[4], '-', 'no table, no table checksum');
  assert.equal(cache.get(wide), 'const s = "\u{1F600} \u00e9";\n');
  // Damage in the table: the code still reads (it is what a start needs), the table does not, and the entry goes.
  const path = join(cache.dir, ascii);
  writeFileSync(path, readFileSync(path, 'latin1').replace('"funcs"', '"funcz"'), 'latin1');
  assert.equal(cache.get(ascii), 'const a = "x";\n');
  assert.equal(cache.get(ascii + SYMBOLS), undefined);
  assert.deepEqual(readdirSync(cache.dir), [wide]);
  // Bytes after code that has no table, a truncated entry, and a flag that is neither: all damage.
  const wpath = join(cache.dir, wide);
  const good = readFileSync(wpath);
  for (const bad of [
    Buffer.concat([good, Buffer.from('x')]),
    good.subarray(0, -2),
    Buffer.from(good.toString('latin1').replace(/ u\n/, ' z\n'), 'latin1'),
  ]) {
    writeFileSync(wpath, bad);
    assert.equal(cache.get(wide), undefined);
    assert.deepEqual(readdirSync(cache.dir), []);
  }
});

test("the CRC-32 used where zlib has none is zlib's", () => {
  assert.equal(portableCrc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(portableCrc32(new Uint8Array(0)), 0);
  const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) & 0xff));
  if (typeof crc32 === 'function') assert.equal(portableCrc32(bytes), crc32(bytes));
});

test('a writer that crashed mid-write leaves only a temporary file, which is never read', (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const cache = openCache(join(p.dir, 'c'), false);
  assert.ok(cache);
  const key = cacheKey(['crash']);
  writeFileSync(join(cache.dir, `${key}.4242.deadbeef.tmp`), '// livepatch-cache 00\nconst half =');
  assert.equal(cache.get(key), undefined);
  cache.set(key, 'whole;\n');
  assert.equal(cache.get(key), 'whole;\n');
});

test('a shared cache directory must be private to this user', (t) => {
  const p = tmpProject({});
  t.after(p.cleanup);
  const root = join(p.dir, 'shared');
  assert.ok(openCache(root, true));
  chmodSync(root, 0o777);
  assert.equal(openCache(root, true), null);
});
