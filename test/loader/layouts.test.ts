// The package managers' other layouts, with real packages: pnpm's (every package's files under node_modules/.pnpm,
// reached through symlinks) and Yarn's Plug'n'Play (no node_modules at all: packages are read out of zip archives,
// and a package with peer dependencies from a virtual path of its own).
// In both, a named dependency is instrumented under its own module id, a patch reaches it through the real CLI, and
// `livepatch cache warm` prepares exactly what a start then finds in the cache.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { WarmReport } from '../../src/cli/cache.js';
import { cli, cliJson, get, lpEnv, type LpEnv } from '../control/harness.js';
import { cliEntry, registerEntry, repoRoot, spawnNode, tmpProject } from '../helpers.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

interface Pkg {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** Where Node would find `name` from the package at `dir` in the repository's own (npm) tree. */
function npmResolve(name: string, dir: string): string | undefined {
  const top = resolve(repoRoot);
  for (let d = dir; d.startsWith(top); d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
  }
  return undefined;
}

/**
 * Lays `roots` and everything they depend on out under `appDir` as pnpm does, from the repository's installed
 * packages: each package's files in `node_modules/.pnpm/<name>@<version>/node_modules/<name>`, its dependencies
 * as symlinks beside it, the app's direct dependencies as symlinks in `node_modules`.
 */
function pnpmLayout(appDir: string, roots: string[]): void {
  const store = join(appDir, 'node_modules/.pnpm');
  const placed = new Map<string, string>(); // source dir → its real dir in the store
  const place = (src: string): string => {
    const known = placed.get(src);
    if (known !== undefined) return known;
    const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as Pkg;
    const home = join(store, `${pkg.name.replace('/', '+')}@${pkg.version}`, 'node_modules');
    const real = join(home, pkg.name);
    placed.set(src, real);
    cpSync(src, real, { recursive: true, filter: (s) => s !== join(src, 'node_modules') });
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
      const from = npmResolve(dep, src);
      if (from === undefined) continue; // an optional dependency that is not installed
      const target = place(from);
      const link = join(home, dep);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(relative(dirname(link), target), link);
    }
    return real;
  };
  for (const name of roots) {
    const link = join(appDir, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), place(join(repoRoot, 'node_modules', name))), link);
  }
}

const fixJson = (hash: string) => `import { defineLivepatch } from 'livepatch';
export default defineLivepatch({
  name: 'fix-json',
  objects: [{ module: 'express/lib/response.js', hash: '${hash}', funcs: [{ name: 'res.json',
    replacement: function (obj) { return this.send('patched ' + JSON.stringify(obj)); } }] }],
});
`;

const server = `const express = require('express');
const app = express();
app.get('/q', (req, res) => res.json(req.query));
const server = app.listen(0, '127.0.0.1', () => console.log('port', server.address().port));
process.on('SIGTERM', () => server.close());
`;

interface Symbols {
  modules: {
    id: string;
    file: string;
    hash: string;
    status?: string;
    reason?: string;
    funcs: { name: string }[];
  }[];
}

/** Starts `server.js` in `dir` under the loader (after `before`), with a cache of its own; resolves with the port. */
async function start(t: TestContext, lp: LpEnv, dir: string, before: string[] = [], debug = false) {
  const child = spawnNode([...before, '--import', registerEntry, 'server.js'], {
    cwd: dir,
    env: {
      ...lp.env,
      LIVEPATCH_CACHE_DIR: join(dir, '.lp-cache'),
      LIVEPATCH_NAME: 'layout',
      ...(debug ? { NODE_DEBUG: 'livepatch' } : {}),
    },
  });
  t.after(() => child.kill());
  const port = Number((await child.waitFor(/^port (\d+)$/m, 30_000))[1]);
  return { child, port, pid: ['--pid', String(child.proc.pid)] };
}

/**
 * Through the real CLI: `path` answers `plain`; loading the patch `name` (module text `text`, written beside the
 * app) makes it answer `patched`; unloading it, `plain` again.
 */
async function patchRoundTrip(
  lp: LpEnv,
  app: { port: number; pid: string[] },
  dir: string,
  patch: { name: string; text: string },
  path: string,
  plain: string,
  patched: string,
): Promise<void> {
  assert.equal((await get(app.port, path)).body, plain);
  const file = join(dir, `${patch.name}.mjs`);
  writeFileSync(file, patch.text);
  const load = await cli(lp, ['load', file, ...app.pid]);
  assert.equal(load.code, 0, load.stderr);
  assert.equal((await get(app.port, path)).body, patched);
  assert.equal((await cli(lp, ['unload', patch.name, ...app.pid])).code, 0);
  assert.equal((await get(app.port, path)).body, plain);
}

/** `livepatch cache warm DIR --json`, with the cache the app is started with. */
async function warm(lp: LpEnv, dir: string): Promise<WarmReport> {
  const child = spawnNode([cliEntry, 'cache', 'warm', dir, '--json'], {
    cwd: dir,
    env: { ...lp.env, LIVEPATCH_CACHE_DIR: join(dir, '.lp-cache') },
  });
  assert.equal(await child.exited, 0, child.stderr());
  return JSON.parse(child.stdout()) as WarmReport;
}

/** The loader's cache lookups in a start's stderr (`NODE_DEBUG=livepatch`), by module id. */
const lookups = (stderr: string) =>
  [...stderr.matchAll(/loader: '([^']+)': (.*)$/gm)].map((m) => [m[1], m[2]]);

test('pnpm: a named dependency behind .pnpm links is instrumented under its own id, patched, and warmed', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({
      name: 'pnpm-shop',
      dependencies: { express: '*' },
      livepatch: { instrument: ['express'] },
    }),
    'server.js': server,
  });
  t.after(p.cleanup);
  pnpmLayout(p.dir, ['express']);
  const lp = lpEnv(t);
  const app = await start(t, lp, p.dir);

  const syms = (await cliJson(lp, ['symbols', ...app.pid, '--json'])) as Symbols;
  const response = syms.modules.find((m) => m.id === 'express/lib/response.js');
  assert.ok(response, syms.modules.map((m) => m.id).join(', '));
  const version = (
    JSON.parse(readFileSync(join(repoRoot, 'node_modules/express/package.json'), 'utf8')) as Pkg
  ).version;
  // The module's file is its real path in the store, and the hash is of that file's bytes.
  assert.equal(
    response.file,
    join(p.dir, `node_modules/.pnpm/express@${version}/node_modules/express/lib/response.js`),
  );
  assert.equal(response.hash, sha256(response.file));
  assert.ok(response.funcs.some((f) => f.name === 'res.json'));
  assert.ok(syms.modules.some((m) => m.id === 'pnpm-shop/server.js'));
  // Express's own dependencies (router, body-parser…) live in the store too, and were not named: each is listed as
  // skipped, by its own package's name.
  const others = syms.modules.filter((m) => !m.id.startsWith('express/') && m.id !== 'pnpm-shop/server.js');
  assert.ok(others.some((m) => m.id === 'router/index.js'));
  for (const m of others) {
    assert.equal(m.status, 'skipped', m.id);
    assert.match(m.reason ?? '', /^package '[^']+' is not named in 'livepatch.instrument'/, m.id);
    assert.ok(m.file.includes('/node_modules/.pnpm/'), m.file);
  }

  const json = { name: 'fix-json', text: fixJson(response.hash) };
  await patchRoundTrip(lp, app, p.dir, json, '/q?a=1', '{"a":"1"}', 'patched {"a":"1"}');
  app.child.proc.kill('SIGTERM');
  await app.child.exited;

  // `cache warm` follows the same links: express's files from the store, and nothing else from it. The start above
  // filled the cache: empty it, so that the next start finds what the warm alone prepared.
  rmSync(join(p.dir, '.lp-cache'), { recursive: true, force: true });
  const report = await warm(lp, p.dir);
  assert.ok(report.instrumented >= 7 + 1, JSON.stringify(report)); // express 5: index.js and 6 in lib/; the app
  assert.deepEqual(report.failed, []);
  // Only optional peers that were never installed (debug's supports-color) may be missing.
  assert.deepEqual(
    report.missing.filter((m) => !m.startsWith('supports-color ')),
    [],
  );
  assert.ok(report.packagesFiltered > 10, 'express depends on dozens of packages, none named');
  const again = await start(t, lp, p.dir, [], true);
  const seen = lookups(again.child.stderr());
  assert.ok(
    seen.some(([id]) => id === 'express/lib/response.js'),
    again.child.stderr(),
  );
  assert.deepEqual(
    seen.filter(([, what]) => what !== 'cache hit'),
    [],
    'every instrumented module comes from the warmed cache',
  );
});

const yarn = join(repoRoot, 'node_modules/@yarnpkg/cli-dist/bin/yarn.js');

/** `yarn install` in `dir`, offline (every package comes from a `file:` folder), with every Yarn setting its own. */
async function yarnInstall(dir: string): Promise<void> {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: dir };
  Object.assign(env, {
    YARN_IGNORE_PATH: '1',
    YARN_ENABLE_NETWORK: '0',
    YARN_ENABLE_TELEMETRY: '0',
    YARN_ENABLE_GLOBAL_CACHE: '0',
    YARN_GLOBAL_FOLDER: join(dir, '.yarn-global'),
    // Under CI=true Yarn refuses to write a lockfile unless told.
    YARN_ENABLE_IMMUTABLE_INSTALLS: '0',
    YARN_NODE_LINKER: 'pnp',
  });
  const child = spawnNode([yarn, 'install'], { cwd: dir, env });
  assert.equal(await child.exited, 0, child.stdout() + child.stderr());
}

const escapeServer = `const escapeHtml = require('escape-html');
const onFinished = require('on-finished');
const { paragraph } = require('html-paragraph');
const server = require('node:http').createServer((req, res) => {
  onFinished(res, () => {});
  const s = new URL(req.url, 'http://x').searchParams.get('s') ?? '';
  res.end(req.url.startsWith('/p') ? paragraph(s) : escapeHtml(s));
});
server.listen(0, '127.0.0.1', () => console.log('port', server.address().port));
process.on('SIGTERM', () => server.close());
`;

// A package with a peer dependency: Yarn gives it a virtual path of its own (\`.yarn/__virtual__/<name>-virtual-<hash>/\`),
// one per set of peers it is installed with, that its .pnp.cjs maps onto the archive.
const paragraphPackage = {
  'vendor/html-paragraph/package.json': JSON.stringify({
    name: 'html-paragraph',
    version: '1.0.0',
    main: 'index.js',
    peerDependencies: { 'escape-html': '*' },
  }),
  'vendor/html-paragraph/index.js': `const escapeHtml = require('escape-html');
function paragraph(s) {
  return '<p>' + escapeHtml(s) + '</p>';
}
module.exports = { paragraph };
`,
};

const fixParagraph = (hash: string) => `import { defineLivepatch } from 'livepatch';
export default defineLivepatch({
  name: 'fix-paragraph',
  objects: [{ module: 'html-paragraph/index.js', hash: '${hash}', funcs: [{ name: 'paragraph',
    replacement: function (s) { return '<p class="patched">' + s.length + '</p>'; } }] }],
});
`;

const fixEscape = (hash: string) => `import { defineLivepatch } from 'livepatch';
export default defineLivepatch({
  name: 'fix-escape',
  objects: [{ module: 'escape-html/index.js', hash: '${hash}', funcs: [{ name: 'escapeHtml',
    replacement: function (s) { return 'patched ' + String(s).length; } }] }],
});
`;

test("Yarn Plug'n'Play: packages read from zip archives and virtual paths are instrumented, patched, and warmed", async (t) => {
  const p = tmpProject({
    'app/package.json': JSON.stringify({
      name: 'pnp-shop',
      dependencies: {
        'escape-html': 'file:../vendor/escape-html',
        'on-finished': 'file:../vendor/on-finished',
        'html-paragraph': 'file:../vendor/html-paragraph',
      },
      // on-finished depends on ee-first from the registry; here it comes from a folder too.
      resolutions: { 'ee-first': 'file:../vendor/ee-first' },
      livepatch: { instrument: ['escape-html', 'on-finished', 'ee-first', 'html-paragraph'] },
    }),
    'app/server.js': escapeServer,
    ...paragraphPackage,
  });
  t.after(p.cleanup);
  for (const name of ['escape-html', 'on-finished', 'ee-first'])
    cpSync(join(repoRoot, 'node_modules', name), join(p.dir, 'vendor', name), { recursive: true });
  const dir = join(p.dir, 'app');
  await yarnInstall(dir);
  assert.ok(existsSync(join(dir, '.pnp.cjs')) && !existsSync(join(dir, 'node_modules')), 'a PnP install');
  const lp = lpEnv(t);
  const pnp = ['-r', './.pnp.cjs'];
  const app = await start(t, lp, dir, pnp);

  const syms = (await cliJson(lp, ['symbols', ...app.pid, '--json'])) as Symbols;
  const escape = syms.modules.find((m) => m.id === 'escape-html/index.js');
  assert.ok(escape, syms.modules.map((m) => m.id).join(', '));
  assert.match(escape.file, /\/\.yarn\/cache\/escape-html-[^/]+\.zip\/node_modules\/escape-html\/index\.js$/);
  // The hash is of the file's bytes, read out of the archive: the same as the folder it was packed from.
  const hash = sha256(join(p.dir, 'vendor/escape-html/index.js'));
  assert.equal(escape.hash, hash);
  assert.ok(syms.modules.some((m) => m.id === 'ee-first/index.js' && m.funcs.length > 0));
  // The package with a peer dependency runs from its virtual path, under its own id and the hash of its file.
  const paragraph = syms.modules.find((m) => m.id === 'html-paragraph/index.js');
  assert.ok(paragraph, syms.modules.map((m) => m.id).join(', '));
  assert.match(
    paragraph.file,
    /\/\.yarn\/__virtual__\/html-paragraph-virtual-[0-9a-f]+\/\d+\/.*\.zip\/node_modules\/html-paragraph\/index\.js$/,
  );
  const paragraphHash = sha256(join(p.dir, 'vendor/html-paragraph/index.js'));
  assert.equal(paragraph.hash, paragraphHash);
  assert.ok(paragraph.funcs.some((f) => f.name === 'paragraph'));

  const escapeFix = { name: 'fix-escape', text: fixEscape(hash) };
  await patchRoundTrip(lp, app, p.dir, escapeFix, '/?s=%3Cb%3E', '&lt;b&gt;', 'patched 3');
  // The package on its virtual path is patched like any other.
  const virtual = { name: 'fix-paragraph', text: fixParagraph(paragraphHash) };
  await patchRoundTrip(
    lp,
    app,
    p.dir,
    virtual,
    '/p?s=%3Cb%3E',
    '<p>&lt;b&gt;</p>',
    '<p class="patched">3</p>',
  );
  app.child.proc.kill('SIGTERM');
  await app.child.exited;

  // `cache warm` finds the packages through .pnp.cjs and reads them out of the archives.
  rmSync(join(dir, '.lp-cache'), { recursive: true, force: true });
  const report = await warm(lp, dir);
  assert.equal(report.pnp, join(dir, '.pnp.cjs'));
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.failed, []);
  assert.equal(report.instrumented, 5, JSON.stringify(report)); // server.js and the four packages' index.js
  assert.equal(report.skipped["Yarn's Plug'n'Play runtime (loaded before the loader)"], 1);
  const again = await start(t, lp, dir, pnp, true);
  const seen = lookups(again.child.stderr());
  assert.deepEqual(seen.map(([id]) => id).sort(), [
    'ee-first/index.js',
    'escape-html/index.js',
    'html-paragraph/index.js',
    'on-finished/index.js',
    'pnp-shop/server.js',
  ]);
  assert.deepEqual(
    seen.filter(([, what]) => what !== 'cache hit'),
    [],
    'every instrumented module comes from the warmed cache',
  );
});
