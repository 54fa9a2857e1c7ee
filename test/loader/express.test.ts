// A real express app under the loader, with express and all its dependencies instrumented, serving over loopback.
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { registerEntry, repoRoot, spawnNode, tmpProject } from '../helpers.js';
import { cleanEnv, REPORT } from './app.js';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).end();
  });
}

test('express with every dependency instrumented serves requests; its modules are registered', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'shop', type: 'module' }),
    'app.js': `import express from 'express';
const app = express();
app.use(express.json());
app.get('/total', (req, res) => res.json({ total: Number(req.query.a) + Number(req.query.b) }));
const server = app.listen(0, '127.0.0.1', () => {
  ${REPORT}
  console.log('port', server.address().port);
});
process.on('SIGTERM', () => server.close());
`,
  });
  t.after(p.cleanup);
  symlinkSync(join(repoRoot, 'node_modules'), join(p.dir, 'node_modules'));
  const child = spawnNode(['--import', registerEntry, 'app.js'], {
    cwd: p.dir,
    env: cleanEnv(p.dir, { LIVEPATCH_INSTRUMENT: '*' }),
  });
  t.after(() => child.kill());
  const port = Number((await child.waitFor(/^port (\d+)$/m, 30_000))[1]);
  const lp = JSON.parse(/^LP (.*)$/m.exec(child.stdout())?.[1] ?? 'null') as { modules: string[] };
  for (const id of [
    'shop/app.js',
    'express/lib/express.js',
    'express/lib/response.js',
    'router/index.js',
    'qs/lib/parse.js',
  ]) {
    assert.ok(lp.modules.includes(id), `${id} registered (${lp.modules.length} modules)`);
  }
  assert.equal(new Set(lp.modules).size, lp.modules.length, 'each module registered once');
  // `*` covers every package but never livepatch itself (its control server and runtime load after the hooks).
  assert.deepEqual(
    lp.modules.filter((id) => id.startsWith('livepatch/')),
    [],
  );
  assert.deepEqual(await get(port, '/total?a=2&b=3'), { status: 200, body: '{"total":5}' });
  assert.equal((await get(port, '/nope')).status, 404);
  assert.equal(
    child
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('livepatch:')).length,
    0,
    child.stderr(),
  );
  child.proc.kill('SIGTERM');
  assert.equal(await child.exited, 0);
});
