// Which modules a real process instruments: the app's own, dependencies named in package.json or
// LIVEPATCH_INSTRUMENT (with exclusions and `*`), with ids for scoped and nested packages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tmpProject } from '../helpers.js';
import { REPORT, runApp } from './app.js';

function project() {
  return tmpProject({
    'package.json': JSON.stringify({ name: 'shop', type: 'module', livepatch: { instrument: ['router'] } }),
    // On Node 20 the hooks thread's note about @acme/tool (an ES module it skipped) comes through a MessagePort:
    // the report waits for the event loop's poll phase, where it is delivered, before reading the notes.
    'main.js': `import router from 'router';\nimport { tool } from '@acme/tool';\nconsole.log('got', router.route(), tool());\nawait new Promise((r) => setImmediate(r));\n${REPORT}`,
    'node_modules/router/package.json': JSON.stringify({ name: 'router', main: 'lib/index.js' }),
    'node_modules/router/lib/index.js': `const qs = require('qs');\nexports.route = () => 'r' + qs.parse();\n`,
    'node_modules/router/node_modules/qs/package.json': JSON.stringify({ name: 'qs' }),
    'node_modules/router/node_modules/qs/index.js': `exports.parse = function parse() { return 'q'; };\n`,
    'node_modules/@acme/tool/package.json': JSON.stringify({
      name: '@acme/tool',
      type: 'module',
      exports: './src/tool.js',
    }),
    'node_modules/@acme/tool/src/tool.js': `export function tool() { return 't'; }\n`,
  });
}

test('dependencies are instrumented only when named, in package.json or LIVEPATCH_INSTRUMENT', async (t) => {
  const p = project();
  t.after(p.cleanup);
  const table: [string | undefined, string[], string[]][] = [
    [undefined, ['router/lib/index.js', 'shop/main.js'], ['@acme/tool/src/tool.js', 'qs/index.js']],
    [
      'qs,@acme/*,-router',
      ['@acme/tool/src/tool.js', 'qs/index.js', 'shop/main.js'],
      ['router/lib/index.js'],
    ],
    ['*', ['@acme/tool/src/tool.js', 'qs/index.js', 'router/lib/index.js', 'shop/main.js'], []],
    ['-*', [], ['@acme/tool/src/tool.js', 'qs/index.js', 'router/lib/index.js', 'shop/main.js']],
  ];
  for (const [env, modules, skipped] of table) {
    const r = await runApp(p.dir, ['main.js'], env === undefined ? {} : { LIVEPATCH_INSTRUMENT: env });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^got rq t$/m);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual([...(r.lp?.modules ?? [])].sort(), modules, `LIVEPATCH_INSTRUMENT=${env}`);
    const notes = r.lp?.notes ?? [];
    assert.deepEqual(notes.map(([id]) => id).sort(), skipped, `LIVEPATCH_INSTRUMENT=${env}`);
    assert.ok(notes.every(([, status]) => status === 'skipped'));
  }
});
