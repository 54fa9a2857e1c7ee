// Module ids and content hashes (DESIGN.md §6): the names patches use to find their target modules.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { contentHash, moduleIdentity } from '../../src/loader/module-id.js';
import { tmpProject } from '../helpers.js';

test('module ids name the nearest package.json that has a name', (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'shop-api' }),
    'src/cart.js': '',
    'dist/package.json': JSON.stringify({ type: 'module' }), // no name: not a package boundary
    'dist/esm/index.js': '',
    'node_modules/express/package.json': JSON.stringify({ name: 'express' }),
    'node_modules/express/lib/response.js': '',
    'node_modules/express/node_modules/qs/package.json': JSON.stringify({ name: 'qs' }),
    'node_modules/express/node_modules/qs/lib/parse.js': '',
    'node_modules/@scope/pkg/package.json': JSON.stringify({ name: '@scope/pkg' }),
    'node_modules/@scope/pkg/dist/package.json': JSON.stringify({ type: 'commonjs' }),
    'node_modules/@scope/pkg/dist/index.js': '',
    'node_modules/broken/package.json': '{ not json',
    'node_modules/broken/index.js': '',
  });
  t.after(p.cleanup);
  const cases: [string, string, string][] = [
    ['src/cart.js', 'shop-api/src/cart.js', ''],
    ['dist/esm/index.js', 'shop-api/dist/esm/index.js', ''],
    ['node_modules/express/lib/response.js', 'express/lib/response.js', 'node_modules/express'],
    [
      'node_modules/express/node_modules/qs/lib/parse.js',
      'qs/lib/parse.js',
      'node_modules/express/node_modules/qs',
    ],
    ['node_modules/@scope/pkg/dist/index.js', '@scope/pkg/dist/index.js', 'node_modules/@scope/pkg'],
    // An unreadable package.json is no boundary: the file belongs to the enclosing named package.
    ['node_modules/broken/index.js', 'shop-api/node_modules/broken/index.js', ''],
  ];
  for (const [file, id, root] of cases) {
    const got = moduleIdentity(join(p.dir, file));
    assert.equal(got.id, id, file);
    assert.equal(got.packageRoot, root === '' ? p.dir : join(p.dir, root), file);
    assert.equal(
      got.packageName,
      id.startsWith('@') ? id.split('/').slice(0, 2).join('/') : id.split('/')[0],
    );
  }
});

test('a loose script without a named package is named after its directory', (t) => {
  const p = tmpProject({ 'package.json': '{}', 'lib/a.js': '' }, 'lp-loose-');
  t.after(p.cleanup);
  const got = moduleIdentity(join(p.dir, 'lib/a.js'));
  // Unless some directory above tmp has a named package.json, the unnamed one stands in.
  if (got.packageRoot === p.dir) assert.match(got.id, /^lp-loose-[^/]+\/lib\/a\.js$/);
});

test('the content hash is sha256 hex of the bytes', () => {
  assert.equal(contentHash(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(
    contentHash(Buffer.from('abc')),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
  assert.equal(contentHash('é'), contentHash(Buffer.from('é', 'utf8')));
});
