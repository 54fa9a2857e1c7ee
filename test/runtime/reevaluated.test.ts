// A module file evaluated again — its require.cache entry deleted and the file required anew, as import-fresh,
// decache and config reloaders do — is a new instance each time, and the app drops the old one. The registry must
// not keep the old ones alive (each holds the module's whole scope), patched or not: not through a replacement that
// keeps its bindings, nor through the last call redirected in it. A patch must reach the instance the app uses now.
// Real loader, real HTTP server, the real CLI.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, cliJson, get, lpEnv } from '../control/harness.js';
import { registerEntry, spawnNode, tmpProject } from '../helpers.js';

// ~3 MB of rows per instance: a few hundred kept by mistake show plainly in the heap.
const config = `const rows = Array.from({ length: 40000 }, (_, i) => ({ i, name: 'row' + i }));
function lookup(i) {
  return rows[i % rows.length].name;
}
module.exports = { lookup };
`;

const server = `const http = require('node:http');
const file = require.resolve('./config.js');
let config = require('./config.js');
// import-fresh's way: the cache entry and the parent's link to the child go, and the file is evaluated again.
// A dependency nobody named, reloaded too: it is listed, not instrumented, once.
const helper = require.resolve('helper');
function reload() {
  for (const f of [file, helper]) {
    delete require.cache[f];
    require(f);
    const i = module.children.findIndex((c) => c.id === f);
    if (i >= 0) module.children.splice(i, 1);
  }
  config = require('./config.js');
  config.lookup(0); // each instance runs: patched, a redirected call leaves its SELF with the runtime
}
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/reload') {
    for (let n = Number(url.searchParams.get('n')); n > 0; n--) reload();
    res.end('reloaded');
  } else if (url.pathname === '/heap') {
    // Collected in a later turn than any reload (a WeakRef's target lives to the end of the job that made it).
    setImmediate(() => {
      globalThis.gc();
      setTimeout(() => {
        globalThis.gc();
        res.end(String(process.memoryUsage().heapUsed));
      }, 50);
    });
  } else res.end(config.lookup(Number(url.searchParams.get('i'))));
});
server.listen(0, '127.0.0.1', () => console.log('port', server.address().port));
process.on('SIGTERM', () => server.close());
`;

const fix = (hash: string) => `import { defineLivepatch } from 'livepatch';
export default defineLivepatch({
  name: 'fix-lookup',
  // As a built patch does, the replacement keeps the instance's bindings.
  objects: [{ module: 'reload-app/config.js', hash: '${hash}', funcs: [{ name: 'lookup', factory(ctx) {
    const bindings = ctx.bindings;
    return function lookup(i) { return 'patched ' + i + ' of ' + bindings.rows.length; };
  } }] }],
});
`;

interface Symbols {
  modules: { id: string; file: string; status: string }[];
}

test('a module evaluated again: old instances are let go, patched or not, and a patch reaches the live one', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'reload-app' }),
    'config.js': config,
    'server.js': server,
    'node_modules/helper/package.json': JSON.stringify({ name: 'helper', version: '1.0.0' }),
    'node_modules/helper/index.js': 'module.exports = (s) => s.trim();\n',
  });
  t.after(p.cleanup);
  const lp = lpEnv(t);
  const child = spawnNode(['--expose-gc', '--import', registerEntry, 'server.js'], {
    cwd: p.dir,
    env: { ...lp.env, LIVEPATCH_CACHE_DIR: join(p.dir, '.lp-cache') },
  });
  t.after(() => child.kill());
  const port = Number((await child.waitFor(/^port (\d+)$/m, 30_000))[1]);
  const pid = ['--pid', String(child.proc.pid)];
  const heapMiB = async () => Number((await get(port, '/heap')).body) / 2 ** 20;
  const instances = async (id = 'reload-app/config.js') => {
    const syms = (await cliJson(lp, ['symbols', ...pid, '--json'])) as Symbols;
    return syms.modules.filter((m) => m.id === id).length;
  };
  const reload = async (times: number) => {
    // In several requests, as a service reloads now and then; each request's instances can go after it.
    for (let r = 0; r < times / 20; r++) assert.equal((await get(port, '/reload?n=20')).body, 'reloaded');
  };

  const before = await heapMiB();
  await reload(200);
  const after = await heapMiB();
  // 200 instances kept would be ~600 MiB; the first instance and the live one are listed.
  assert.ok(after - before < 40, `heap grew from ${before.toFixed(1)} to ${after.toFixed(1)} MiB`);
  assert.ok((await instances()) <= 3, `${await instances()} instances of config.js listed`);
  assert.equal(await instances('helper/index.js'), 1);
  assert.equal((await get(port, '/?i=5')).body, 'row5');

  // A patch reaches the instance the app uses now, and every instance evaluated while it is enabled.
  const hash = createHash('sha256')
    .update(readFileSync(join(p.dir, 'config.js')))
    .digest('hex');
  writeFileSync(join(p.dir, 'fix-lookup.mjs'), fix(hash));
  const load = await cli(lp, ['load', join(p.dir, 'fix-lookup.mjs'), ...pid]);
  assert.equal(load.code, 0, load.stderr);
  assert.equal((await get(port, '/?i=5')).body, 'patched 5 of 40000');
  await reload(200);
  assert.equal((await get(port, '/?i=7')).body, 'patched 7 of 40000');
  const patched = await heapMiB();
  assert.ok(
    patched - before < 40,
    `heap grew from ${before.toFixed(1)} to ${patched.toFixed(1)} MiB, patched`,
  );
  // The patch let go of the instances the app dropped (klp_module_going), and says so in the log.
  const info = (await cliJson(lp, ['info', 'fix-lookup', ...pid, '--json'])) as {
    objects: { name: string; instances: unknown[] }[];
  };
  const applied = info.objects.find((o) => o.name === 'reload-app/config.js')!.instances.length;
  assert.ok(applied >= 1 && applied <= 3, `the patch is applied to ${applied} instances`);
  const log = await cli(lp, ['log', ...pid]);
  assert.match(log.stdout, /reverting patch 'fix-lookup' on unloading module 'reload-app\/config\.js'/);

  assert.equal((await cli(lp, ['unload', 'fix-lookup', ...pid])).code, 0);
  assert.equal((await get(port, '/?i=5')).body, 'row5');
  await reload(20);
  assert.equal((await get(port, '/?i=6')).body, 'row6');

  // A reloader usually reloads because the file changed: every content is new, and is let go all the same.
  for (let edit = 1; edit <= 12; edit++) {
    writeFileSync(join(p.dir, 'config.js'), `${config}// edit ${edit}\n`);
    await reload(20);
  }
  const edited = await heapMiB();
  assert.ok(edited - before < 40, `heap grew from ${before.toFixed(1)} to ${edited.toFixed(1)} MiB, edited`);
  assert.ok((await instances()) <= 3, `${await instances()} instances of config.js listed after edits`);
});
