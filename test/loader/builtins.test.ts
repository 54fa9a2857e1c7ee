// What the loader costs a start in Node's own modules: which thread it runs in is known without loading
// node:worker_threads (src/loader/thread.ts), and the bundle takes builtins without their ES module facades, which
// would load every lazy export (scripts/bundle.mjs).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { features } from '../../src/loader/features.js';
import { distRoot, registerEntry, tmpProject } from '../helpers.js';
import { cleanEnv } from './app.js';

const thread = pathToFileURL(join(distRoot, 'src/loader/thread.js')).href;

test('isMainThread is true in the main thread without loading node:worker_threads, false in a worker', () => {
  const inWorker = `import(${JSON.stringify(thread)}).then((m) => console.log('worker', m.isMainThread()))`;
  const code = `import { isMainThread } from ${JSON.stringify(thread)};
const loaded = () => process.moduleLoadList.includes('NativeModule worker_threads');
console.log('main', isMainThread(), loaded());
const { Worker } = await import('node:worker_threads');
const w = new Worker(${JSON.stringify(inWorker)}, { eval: true });
await new Promise((resolve) => w.on('exit', resolve));
console.log('main again', isMainThread());`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^main true false$/m);
  assert.match(r.stdout, /^worker false$/m);
  assert.match(r.stdout, /^main again true$/m);
});

test('a warm start loads no builtin the app does not use through an ES module facade', (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'tiny', type: 'module' }),
    'main.js': `export function add(a, b) { return a + b; }
console.log(add(1, 2), JSON.stringify(process.moduleLoadList));`,
  });
  t.after(p.cleanup);
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [...args, 'main.js'], {
      cwd: p.dir,
      env: cleanEnv(p.dir),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const line = r.stdout.trim();
    assert.equal(line.slice(0, 2), '3 ');
    return JSON.parse(line.slice(2)) as string[];
  };
  const plain = new Set(run([]));
  run(['--import', registerEntry]); // fills the cache: a cold start loads the instrumenter, modules and all
  const loaded = run(['--import', registerEntry]).filter((m) => !plain.has(m));
  // What `import … from 'node:fs'` and 'node:crypto' would bring with their facades: fs.promises (and readline
  // behind it), crypto.webcrypto.
  for (const m of ['internal/fs/promises', 'internal/readline/interface', 'internal/crypto/webcrypto']) {
    assert.ok(!loaded.includes(`NativeModule ${m}`), `${m} loaded: ${loaded.join(' ')}`);
  }
  // The control server's socket needs net (and cluster behind it), the cache crypto and zlib; worker_threads only
  // the hooks thread of Node 20.
  assert.ok(loaded.includes('NativeModule net'));
  assert.equal(loaded.includes('NativeModule worker_threads'), !features.syncHooks.on);
});

test('on a Node.js without process.getBuiltinModule the app runs as is, after one warning', (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'old', type: 'module' }),
    'old-node.mjs': 'delete process.getBuiltinModule;',
    'main.js': `export function add(a, b) { return a + b; }
console.log('sum', add(1, 2), globalThis[Symbol.for('livepatch.registry')] === undefined);`,
  });
  t.after(p.cleanup);
  const r = spawnSync(
    process.execPath,
    ['--import', './old-node.mjs', '--import', registerEntry, 'main.js'],
    {
      cwd: p.dir,
      env: cleanEnv(p.dir),
      encoding: 'utf8',
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^sum 3 true$/m);
  assert.equal(
    r.stderr,
    `livepatch: Node.js ${process.version} is not supported (20.19+, 22.12+); running uninstrumented\n`,
  );
});
