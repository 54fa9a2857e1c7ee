// Source maps: VLQ, the column-accurate map of our own edits, and its composition with a transpiler's map.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnNode, tmpProject } from '../helpers.js';
import ts from 'typescript';
import { instrument } from '../../src/instrument/index.js';
import { decodeMappings, encodeMappings, encodeVlq, type Segment } from '../../src/instrument/sourcemap.js';
import type { SourceMapV3 } from '../../src/instrument/types.js';

/** Where generated (line 0-based, column) maps to: [source index, line, column]. */
function lookup(map: SourceMapV3, line: number, column: number): number[] | undefined {
  const segs = decodeMappings(map.mappings)[line] ?? [];
  let best: Segment | undefined;
  for (const s of segs) if ((s[0] as number) <= column) best = s;
  return best?.slice(1, 4);
}

/** 0-based line and column of the first occurrence of `needle`. */
function at(text: string, needle: string): [number, number] {
  const i = text.indexOf(needle);
  assert.ok(i >= 0, `'${needle}' not found`);
  const before = text.slice(0, i).split('\n');
  return [before.length - 1, (before[before.length - 1] as string).length];
}

describe('instrument: source maps', () => {
  it('encodes and decodes base64 VLQ', () => {
    assert.deepEqual([0, 1, -1, 15, 16, -16, 1000, -123456].map(encodeVlq), [
      'A',
      'C',
      'D',
      'e',
      'gB',
      'hB',
      'w+B',
      'hkxH',
    ]);
    const lines: Segment[][] = [
      [
        [0, 0, 0, 0],
        [5, 0, 0, 9],
      ],
      [],
      [[3, 0, 2, 1, 0]],
    ];
    assert.deepEqual(decodeMappings(encodeMappings(lines)), lines);
  });

  it('maps every original token back to its own line and column', () => {
    const src =
      "const k = 1;\nfunction greet(n) { return 'hi ' + n; }\nconst f = (x) => x.y;\nclass A { m() { throw new Error('m'); } }";
    const r = instrument(src, { id: 'p/a.js', hash: '0', file: '/abs/a.js', format: 'commonjs' });
    assert.deepEqual(r.map.sources, ['/abs/a.js']);
    for (const token of ['const k', "return 'hi '", 'x.y', "throw new Error('m')", 'class A']) {
      const [gl, gc] = at(r.code, token);
      const [ol, oc] = at(src, token);
      assert.deepEqual(lookup(r.map, gl, gc), [0, ol, oc], token);
    }
    // The prologue maps to its insertion point, just inside the body's brace.
    const [pl, pc] = at(r.code, 'if (__lp$m.f0)');
    const brace = (src.split('\n')[1] as string).indexOf('{') + 1;
    assert.deepEqual(lookup(r.map, pl, pc - 1), [0, 1, brace]);
  });

  it('composes with the map the input carries, pointing at the original .ts', () => {
    const tsSource = [
      'interface Item { price: number }',
      'export function total(items: Item[]): number {',
      '  return items.reduce((s: number, i: Item) => s + i.price, 0);',
      '}',
      'export const fail = (why: string): never => {',
      '  throw new Error(why);',
      '};',
    ].join('\n');
    const out = ts.transpileModule(tsSource, {
      compilerOptions: { sourceMap: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: 'cart.ts',
    });
    const js = out.outputText.replace(/\n\/\/# sourceMappingURL=.*$/, '');
    const inputMap = JSON.parse(out.sourceMapText as string) as SourceMapV3;
    const r = instrument(js, {
      id: 'p/cart.js',
      hash: '0',
      file: '/abs/cart.js',
      format: 'module',
      inputMap,
    });
    assert.deepEqual(r.map.sources, inputMap.sources);
    for (const token of ['throw new Error(why)', 's + i.price', 'return items.reduce']) {
      const [gl, gc] = at(r.code, token);
      const [ol, oc] = at(tsSource, token);
      assert.deepEqual(lookup(r.map, gl, gc), [0, ol, oc], token);
    }
  });

  it('a stack trace from instrumented transpiled code points into the .ts under --enable-source-maps', async (t) => {
    const tsSource = [
      'type Why = string;',
      'export const fail = (why: Why): never => {',
      '  throw new Error(why);',
      '};',
      'try { fail("x"); } catch (e) { console.log((e as Error).stack); }',
    ].join('\n');
    const out = ts.transpileModule(tsSource, {
      compilerOptions: { sourceMap: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: 'fail.ts',
    });
    const js = out.outputText.replace(/\n\/\/# sourceMappingURL=.*$/, '');
    const project = tmpProject({ 'fail.ts': tsSource });
    t.after(project.cleanup);
    const file = join(project.dir, 'fail.mjs');
    const inputMap = JSON.parse(out.sourceMapText as string) as SourceMapV3;
    const r = instrument(js, { id: 'p/fail.mjs', hash: '0', file, format: 'module', inputMap });
    const inline = Buffer.from(JSON.stringify(r.map)).toString('base64');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, `${r.code}\n//# sourceMappingURL=data:application/json;base64,${inline}\n`);
    const child = spawnNode(['--enable-source-maps', file]);
    t.after(child.kill);
    assert.equal(await child.exited, 0, child.stderr());
    assert.match(child.stdout(), /fail\.ts:3:9\b/, child.stdout());
    assert.match(child.stdout(), /fail\.ts:5:7\b/, child.stdout());
  });

  it('gives the original line and column in stack traces under --enable-source-maps', async (t) => {
    const src = [
      "'use strict';",
      'function inner(x) { if (x > 1) { return [1].map((v) => { throw new Error("deep " + v); }); } }',
      'const outer = (n) => inner(n + 1);',
      'try { outer(5); } catch (e) { console.log(e.stack.split("\\n").slice(1, 4).join("|")); }',
    ].join('\n');
    const project = tmpProject({ 'orig.cjs': src });
    t.after(project.cleanup);
    const file = join(project.dir, 'instr.cjs');
    const r = instrument(src, { id: 'p/instr.cjs', hash: '0', file, format: 'commonjs' });
    const inline = Buffer.from(JSON.stringify(r.map)).toString('base64');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, `${r.code}\n//# sourceMappingURL=data:application/json;base64,${inline}\n`);
    const run = async (name: string) => {
      const child = spawnNode(['--enable-source-maps', join(project.dir, name)]);
      t.after(child.kill);
      await child.exited;
      // Only the positions: with a map Node also words anonymous frames differently ('at <anonymous> (…)').
      return [...child.stdout().matchAll(/(?:orig|instr)\.cjs:(\d+:\d+)/g)].map((x) => x[1]).join(' ');
    };
    const original = await run('orig.cjs');
    assert.match(original, /^2:\d+ 2:\d+$/);
    assert.equal(await run('instr.cjs'), original);
  });
});
