// Stack traces through the loader keep their line numbers: plain JavaScript, and TypeScript run through tsx
// (ESM and CommonJS) mapped back to the .ts line under --enable-source-maps, and TypeScript run by Node's own type
// stripping, whose lines and columns are the file's.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import typescript from 'typescript';
import { openCache } from '../../src/loader/cache.js';
import { repoRoot, tmpProject } from '../helpers.js';
import { REPORT, runApp } from './app.js';

const tsx = ['--import', pathToFileURL(join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href];
const sha = (text: string) => createHash('sha256').update(text).digest('hex');

// The throw is on line 6 of lib; the types and the interface push tsx's output lines away from the .ts lines.
const libTs = `interface Item {\n  n: number;\n}\nexport function total(items: Item[]): number {\n  let sum: number = 0;\n  if (items.length === 0) throw new Error('empty');\n  for (const i of items) sum += i.n;\n  return sum;\n}\n`;
const mainTs = `import { total } from './lib.ts';\nconst items: { n: number }[] = [{ n: 2 }, { n: 3 }];\nconsole.log('total', total(items));\ntry {\n  total([]);\n} catch (e) {\n  console.log('at', (e as Error).stack?.split('\\n')[1]);\n}\n${REPORT}`;

test('plain JavaScript: a throw has the same line with the loader, and the same column under source maps', async (t) => {
  const lib = `'use strict';\n\nfunction check(n) {\n  if (n < 0) {\n    throw new Error('negative');\n  }\n  return n;\n}\nmodule.exports = { check };\n`;
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'pos' }),
    'lib.js': lib,
    // The throw on line 1 is on the line that also receives the module header.
    'main.js': `const { check } = require('./lib.js'); const f = () => { throw new Error('one'); };\ntry { check(-1); } catch (e) { console.log('at', e.stack.split('\\n')[1]); }\ntry { f(); } catch (e) { console.log('at', e.stack.split('\\n')[1]); }\n${REPORT}`,
  });
  t.after(p.cleanup);
  const plain = await runApp(p.dir, ['main.js'], { LIVEPATCH_DISABLE: '1' });
  const where = (out: string) =>
    [...out.matchAll(/^at\s+at .*?([^/]+\.js):(\d+):(\d+)\)?$/gm)].map((m) => m.slice(1));
  assert.deepEqual(
    where(plain.out).map(([f, l]) => [f, l]),
    [
      ['lib.js', '5'],
      ['main.js', '1'],
    ],
  );
  for (const flags of [[], ['--enable-source-maps']]) {
    const r = await runApp(p.dir, [...flags, 'main.js']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.lp?.modules, ['pos/main.js', 'pos/lib.js']);
    const got = where(r.out);
    assert.deepEqual(
      flags.length === 0 ? got.map(([f, l]) => [f, l]) : got,
      flags.length === 0 ? where(plain.out).map(([f, l]) => [f, l]) : where(plain.out),
      r.out,
    );
  }
});

test('a dependency compiled with a map file: mapped to its .ts under source maps, the map left unread without', async (t) => {
  // The throw is on line 6 of the .ts; the interface and the types move it in the compiled .js.
  const ts = `interface Opts {\n  min: number;\n}\nexport function check(n: number, o: Opts = { min: 0 }): number {\n  if (n < o.min) {\n    throw new Error('too small');\n  }\n  return n;\n}\n`;
  const out = typescript.transpileModule(ts, {
    fileName: 'index.ts',
    compilerOptions: {
      module: typescript.ModuleKind.CommonJS,
      target: typescript.ScriptTarget.ES2022,
      sourceMap: true,
    },
  });
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'mapped', livepatch: { instrument: ['dep'] } }),
    'node_modules/dep/package.json': JSON.stringify({ name: 'dep', main: 'dist/index.js' }),
    'node_modules/dep/src/index.ts': ts,
    'node_modules/dep/dist/index.js': out.outputText,
    'node_modules/dep/dist/index.js.map': (out.sourceMapText ?? '').replace(
      '"sources":["index.ts"]',
      '"sources":["../src/index.ts"]',
    ),
    'main.js': `const { check } = require('dep');\ntry { check(-1); } catch (e) { console.log('at', e.stack.split('\\n')[1]); }\n${REPORT}`,
  });
  t.after(p.cleanup);
  assert.match(out.outputText, /\/\/# sourceMappingURL=index\.js\.map\s*$/);
  const jsLine = String(out.outputText.split('\n').findIndex((l) => l.includes('throw new Error')) + 1);
  const at = (o: string) => /^at\s+at .*?([^/]+\.[jt]s):(\d+):(\d+)\)?$/m.exec(o)?.slice(1);
  // The code of the dependency's cache entry (its symbol table follows it in the file).
  const entries = () => {
    const cache = openCache(join(p.dir, '.lp-run/cache'), false);
    return readdirSync(cache?.dir ?? '')
      .map((e) => cache?.get(e) ?? '')
      .filter((code) => code.includes('"dep/dist/index.js"'));
  };
  for (const flags of [['--enable-source-maps'], []]) {
    const plain = await runApp(p.dir, [...flags, 'main.js'], { LIVEPATCH_DISABLE: '1' });
    assert.deepEqual(
      at(plain.out)?.slice(0, 2),
      flags.length ? ['index.ts', '6'] : ['index.js', jsLine],
      plain.out,
    );
    const r = await runApp(p.dir, [...flags, 'main.js']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.lp?.modules, ['mapped/main.js', 'dep/dist/index.js']);
    // Under source maps the composed map gives the same .ts line and column as Node gives without the loader.
    if (flags.length) assert.deepEqual(at(r.out), at(plain.out));
    else assert.deepEqual(at(r.out)?.slice(0, 2), at(plain.out)?.slice(0, 2));
    const [code = ''] = entries();
    if (flags.length) assert.match(code, /sourceMappingURL=data:application\/json/);
    else {
      assert.doesNotMatch(code, /sourceMappingURL=data:/, 'no map inlined where nothing reads it');
      assert.match(code, /\/\/# sourceMappingURL=index\.js\.map\s*$/, 'the reference is left as it was');
    }
    rmSync(join(p.dir, '.lp-run/cache'), { recursive: true, force: true });
  }
});

for (const type of ['module', 'commonjs']) {
  test(`tsx (${type}): .ts modules are instrumented after tsx, named and hashed from the .ts file on disk`, async (t) => {
    const p = tmpProject({
      'package.json': JSON.stringify({ name: 'tsapp', type }),
      'src/lib.ts': libTs,
      'src/main.ts': mainTs,
    });
    t.after(p.cleanup);
    const r = await runApp(p.dir, ['--enable-source-maps', 'src/main.ts'], {}, { before: tsx });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.warnings, []);
    assert.match(r.out, /^total 5$/m);
    assert.deepEqual([...(r.lp?.modules ?? [])].sort(), ['tsapp/src/lib.ts', 'tsapp/src/main.ts']);
    assert.equal(r.lp?.hashes['tsapp/src/lib.ts'], sha(libTs));
    // tsx's CommonJS wrapper does not show in the names: `total` is a top-level function in both formats
    // (beside esbuild's helpers such as `__name`, which are functions of the module too).
    const funcs = r.lp?.funcs['tsapp/src/lib.ts'] ?? [];
    assert.ok(funcs.includes('total'), funcs.join(', '));
    assert.ok(!funcs.some((f) => f.includes('<anonymous>')), funcs.join(', '));
    assert.match(r.out, /^at\s+at total \(.*\/src\/lib\.ts:6:\d+\)$/m, r.out);
  });
}

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const stripsTypes = major > 22 || (major === 22 && minor >= 18);
test(
  "TypeScript run by Node's own type stripping is instrumented in place: a stack names the line and column Node's does",
  { skip: !stripsTypes },
  async (t) => {
    const p = tmpProject({
      'package.json': JSON.stringify({ name: 'native', type: 'module' }),
      'lib.ts': `interface Cart { qty: number }\nexport function inc(c: Cart, by: number = 1): number {\n  if (c.qty < 0) throw new Error('negative');\n  return c.qty + by;\n}\n`,
      'enum.ts': `export enum Color { Red }\n`,
      // Node refuses to strip a dependency's TypeScript: so must a start under livepatch.
      'node_modules/tsdep/package.json': JSON.stringify({
        name: 'tsdep',
        type: 'module',
        exports: './index.ts',
      }),
      'node_modules/tsdep/index.ts': `export const dep = (n: number): number => n;\n`,
      'main.ts': `import { inc } from './lib.ts';\nconsole.log('inc', inc({ qty: 1 }));\ntry { inc({ qty: -1 }); } catch (e: any) { console.log('at', e.stack.split('\\n')[1].trim()); }\ntry { await import('./enum.ts'); } catch (e: any) { console.log('enum', e.code); }\ntry { await import('tsdep'); } catch (e: any) { console.log('dep', e.code); }\n${REPORT}`,
    });
    t.after(p.cleanup);
    const plain = spawnSync(process.execPath, ['main.ts'], { cwd: p.dir, encoding: 'utf8' });
    const plainAt = /^at (.*)$/m.exec(plain.stdout)?.[1];
    assert.match(plainAt ?? '', /lib\.ts:3:\d+\)$/, plain.stdout + plain.stderr);
    const r = await runApp(p.dir, ['main.ts']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^inc 2$/m);
    assert.equal(
      /^at (.*)$/m.exec(r.out)?.[1],
      plainAt,
      'the same file, line and column as without livepatch',
    );
    assert.match(
      r.out,
      /^enum ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX$/m,
      'an enum fails as it does without livepatch',
    );
    assert.match(plain.stdout, /^dep ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING$/m);
    assert.match(
      r.out,
      /^dep ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING$/m,
      "a dependency's .ts is refused as by Node",
    );
    assert.deepEqual(r.warnings, []);
    assert.doesNotMatch(
      r.err,
      /stripTypeScriptTypes/,
      "livepatch's use of the experimental API is not the app's warning",
    );
    assert.deepEqual(r.lp?.modules, ['native/lib.ts', 'native/main.ts']);
    assert.deepEqual(r.lp?.funcs['native/lib.ts'], ['inc']);
    // The hash is of the .ts file, as for tsx: what a patch names.
    assert.equal(
      r.lp?.hashes['native/lib.ts'],
      createHash('sha256')
        .update(readFileSync(join(p.dir, 'lib.ts')))
        .digest('hex'),
    );
    assert.deepEqual(
      r.lp?.notes.map(([id, status, reason]) => [id, status, /type stripping cannot run/.test(reason)]),
      [['native/enum.ts', 'skipped', true]],
    );
  },
);
