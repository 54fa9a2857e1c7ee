// The runtime's http2 hook costs nothing to an app that never uses http2: under the real loader, node:http2
// is not loaded by livepatch, and an app's own http2 server still has its streams counted as tasks.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { distRoot, registerEntry, spawnNode, tmpProject } from '../helpers.js';

// CommonJS: on Node 22, an ESM import of node:http loads node:http2 by itself.
const HTTP_APP = `const { createServer, get } = require('node:http');
const server = createServer((req, res) => res.end('ok'));
server.listen(0, '127.0.0.1', () => {
  get({ host: '127.0.0.1', port: server.address().port, path: '/' }, (res) => {
    res.resume();
    res.on('end', () => {
      server.close();
      const seen = process.moduleLoadList.filter((m) => /http2/.test(m));
      const rt = globalThis[Symbol.for('livepatch.registry')];
      console.log('#result ' + JSON.stringify({ seen, runtime: rt?.runtime !== undefined }));
    });
  });
});
`;

const HTTP2_APP = `import { createServer, connect } from 'node:http2';
import { pathToFileURL } from 'node:url';
const { getRuntime } = await import(pathToFileURL(process.env.LP_DIST + '/src/runtime/index.js').href);
const rt = getRuntime();
let release, arrived;
const gate = new Promise((r) => (release = r));
const slowArrived = new Promise((r) => (arrived = r));
const server = createServer(async (req, res) => {
  if (req.url === '/slow') {
    arrived();
    await gate;
  }
  res.end('ok');
});
server.listen(0, '127.0.0.1', async () => {
  const client = connect('http://127.0.0.1:' + server.address().port);
  const s = client.request({ ':path': '/slow' });
  s.resume();
  const done = new Promise((r) => s.on('end', r));
  await slowArrived;
  // A patch of a function nobody calls: the transition waits only for the tasks that run.
  rt.loadPatch({ name: 'h2', objects: [{ module: 'process', funcs: [] }] });
  const tasks = rt.transition()?.tasks.map((t) => t.label) ?? [];
  release();
  await done;
  const complete = await rt.waitForTransition(2000);
  client.close();
  server.close();
  console.log('#result ' + JSON.stringify({ tasks, complete }));
});
`;

function run(app: string, file = 'app.js', loader = true) {
  const project = tmpProject({
    'package.json': JSON.stringify({ name: 'lazy', type: 'module' }),
    [file]: app,
  });
  const child = spawnNode([...(loader ? ['--import', registerEntry] : []), join(project.dir, file)], {
    cwd: project.dir,
    env: {
      ...process.env,
      LP_DIST: distRoot,
      XDG_RUNTIME_DIR: join(project.dir, 'run'),
      LIVEPATCH_INSTALL_DIR: join(project.dir, 'install'),
      LIVEPATCH_CACHE_DIR: join(project.dir, 'cache'),
    },
  });
  return { child, cleanup: project.cleanup };
}

test('an app that never loads node:http2 does not get it from livepatch', async (t) => {
  const results: { seen: string[]; runtime: boolean }[] = [];
  for (const loader of [false, true]) {
    const { child, cleanup } = run(HTTP_APP, 'app.cjs', loader);
    t.after(cleanup);
    t.after(child.kill);
    results.push(
      JSON.parse((await child.waitFor(/#result (.*)/))[1]!) as { seen: string[]; runtime: boolean },
    );
    assert.equal(await child.exited, 0);
  }
  const [alone, under] = results;
  assert.deepEqual(alone!.seen, [], 'the app alone does not load it');
  assert.equal(under!.runtime, true, 'the runtime is installed (its request hooks are live)');
  assert.deepEqual(under!.seen, []);
});

test("an app's own http2 server, hooked when it listens: a stream in flight holds the transition", async (t) => {
  const { child, cleanup } = run(HTTP2_APP);
  t.after(cleanup);
  t.after(child.kill);
  const result = JSON.parse((await child.waitFor(/#result (.*)/))[1]!) as {
    tasks: string[];
    complete: boolean;
  };
  assert.deepEqual(result, { tasks: ['GET /slow'], complete: true });
  assert.equal(await child.exited, 0);
});
