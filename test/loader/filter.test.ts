// What the loader instruments: the app by default, dependencies when named, never livepatch's own code.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { findAppRoot, parseRules, type LoaderConfig } from '../../src/loader/config.js';
import { decide, isAppFile, ruleMatches } from '../../src/loader/filter.js';
import { lazyIdentity, moduleIdentity, type ModuleIdentity } from '../../src/loader/module-id.js';
import { tmpProject } from '../helpers.js';

test('rules: names, scopes, star, exclusions', () => {
  assert.deepEqual(
    parseRules(['express', ' -qs ', '', '@s/*', '*', '-'], 'LIVEPATCH_INSTRUMENT').map((r) => [
      r.pattern,
      r.exclude,
    ]),
    [
      ['express', false],
      ['qs', true],
      ['@s/*', false],
      ['*', false],
    ],
  );
  const table: [string, string, boolean][] = [
    ['*', 'anything', true],
    ['express', 'express', true],
    ['express', 'express-session', false],
    ['@s/*', '@s/a', true],
    ['@s/*', '@sx/a', false],
    ['@s/a', '@s/a', true],
  ];
  for (const [pattern, name, want] of table)
    assert.equal(ruleMatches(pattern, name), want, `${pattern} ~ ${name}`);
});

test('the app root is the entry point package; app files exclude node_modules', (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'app' }),
    'src/main.js': '',
    'src/sub/package.json': JSON.stringify({ type: 'module' }),
    'src/sub/x.js': '',
    'node_modules/tool/package.json': JSON.stringify({ name: 'tool' }),
    'node_modules/tool/cli.js': '',
  });
  t.after(p.cleanup);
  assert.equal(findAppRoot(join(p.dir, 'src/main.js'), '/'), p.dir);
  assert.equal(
    findAppRoot(join(p.dir, 'src/sub/x.js'), '/'),
    p.dir,
    'an unnamed package.json is not the app',
  );
  assert.equal(
    findAppRoot(join(p.dir, 'node_modules/tool/cli.js'), join(p.dir, 'src')),
    p.dir,
    'tools use cwd',
  );
  assert.equal(findAppRoot(undefined, join(p.dir, 'src')), p.dir);
  assert.ok(isAppFile(join(p.dir, 'src/main.js'), p.dir));
  assert.ok(!isAppFile(join(p.dir, 'node_modules/tool/cli.js'), p.dir));
  assert.ok(
    !isAppFile(`${p.dir}-other/x.js`, p.dir),
    'a sibling directory sharing the prefix is not the app',
  );
  assert.ok(!isAppFile(join(p.dir, 'src/vendor/node_modules/x/y.js'), p.dir), 'a nested node_modules');
  assert.ok(isAppFile(join(p.dir, 'src/node_modules_old/y.js'), p.dir), 'a name that only starts so');
  assert.ok(isAppFile(join(p.dir, 'node_modulesx/node_modules.js'), p.dir));
  assert.ok(!isAppFile(join(p.dir, 'src/node_modulesx/node_modules/z.js'), p.dir));
  assert.ok(isAppFile(join(p.dir, 'main.js'), `${p.dir}/`), 'a root given with its separator');
});

test('decide: defaults, package.json list then env, last rule wins, never livepatch itself', (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'app' }),
    'src/a.js': '',
    'node_modules/express/package.json': JSON.stringify({ name: 'express' }),
    'node_modules/express/index.js': '',
    'node_modules/qs/package.json': JSON.stringify({ name: 'qs' }),
    'node_modules/qs/index.js': '',
    'lp/dist/src/index.js': '',
  });
  t.after(p.cleanup);
  const config = (pkg: string[], env: string): LoaderConfig => ({
    appRoot: p.dir,
    selfRoot: join(p.dir, 'lp'),
    selfDirs: [join(p.dir, 'lp/dist/src')],
    rules: [
      ...parseRules(pkg, "package.json 'livepatch.instrument'"),
      ...parseRules(env.split(','), 'LIVEPATCH_INSTRUMENT'),
    ],
    cacheDir: null,
    cacheDirShared: false,
    inlineMaps: false,
    sourceText: 'original',
  });
  const yes = (file: string, c: LoaderConfig) =>
    decide(join(p.dir, file), moduleIdentity(join(p.dir, file)), c).instrument;
  const table: [string[], string, string, boolean][] = [
    [[], '', 'src/a.js', true],
    [[], '', 'node_modules/express/index.js', false],
    [['express'], '', 'node_modules/express/index.js', true],
    [['express'], '', 'node_modules/qs/index.js', false],
    [[], 'qs', 'node_modules/qs/index.js', true],
    [['express'], '-express', 'node_modules/express/index.js', false],
    [[], '*', 'node_modules/qs/index.js', true],
    [[], '*,-qs', 'node_modules/qs/index.js', false],
    [[], '*,-qs', 'node_modules/express/index.js', true],
    [[], '-app', 'src/a.js', false],
    [[], '*', 'lp/dist/src/index.js', false],
  ];
  for (const [pkg, env, file, want] of table)
    assert.equal(yes(file, config(pkg, env)), want, `${pkg} ${env} ${file}`);
  const d = decide(
    join(p.dir, 'node_modules/qs/index.js'),
    moduleIdentity(join(p.dir, 'node_modules/qs/index.js')),
    config(['qs'], '-qs'),
  );
  assert.deepEqual(d, {
    instrument: false,
    reason: "package 'qs' excluded by '-qs' in LIVEPATCH_INSTRUMENT",
    note: true,
  });
});

test('a module turned down by its path alone costs no package name until its reason is read', (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'app' }),
    'node_modules/qs/package.json': JSON.stringify({ name: 'qs' }),
    'node_modules/qs/index.js': '',
    'src/a.js': '',
  });
  t.after(p.cleanup);
  const config = (rules: string[]): LoaderConfig => ({
    appRoot: p.dir,
    selfRoot: join(p.dir, 'lp'),
    selfDirs: [join(p.dir, 'lp/dist/src')],
    rules: parseRules(rules, 'LIVEPATCH_INSTRUMENT'),
    cacheDir: null,
    cacheDirShared: false,
    inlineMaps: false,
    sourceText: 'original',
  });
  const file = join(p.dir, 'node_modules/qs/index.js');
  let reads = 0;
  const counted = (f: string): ModuleIdentity => {
    const real = lazyIdentity(f);
    return {
      get id() {
        reads++;
        return real.id;
      },
      get packageName() {
        reads++;
        return real.packageName;
      },
      get packageRoot() {
        reads++;
        return real.packageRoot;
      },
    };
  };
  const d = decide(file, counted(file), config([]));
  assert.equal(d.instrument, false);
  assert.equal(reads, 0, 'no rules: the path decided');
  assert.equal(
    !d.instrument && d.reason,
    "package 'qs' is not named in 'livepatch.instrument' or LIVEPATCH_INSTRUMENT",
  );
  assert.equal(reads, 1);
  // With rules, the name is what they match: it is read to decide.
  reads = 0;
  assert.equal(decide(file, counted(file), config(['qs'])).instrument, true);
  assert.ok(reads > 0);
  // The lazy identity is the eager one.
  assert.deepEqual({ ...lazyIdentity(file) }, { ...moduleIdentity(file) });
});
