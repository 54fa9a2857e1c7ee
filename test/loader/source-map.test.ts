// Source maps around the instrumenter: taking tsx's map off, putting the composed one back, tsx's CJS wrapper.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { takeSourceMap, unwrapTsxCjs, withInlineMap } from '../../src/loader/source-map.js';
import { tmpProject } from '../helpers.js';

const map = { version: 3 as const, sources: ['a.ts'], names: [], mappings: ';AAAA' };

test('inline maps are taken off and put back', () => {
  const code = withInlineMap('let a = 1;', map);
  assert.match(code, /^let a = 1;\n\/\/# sourceMappingURL=data:application\/json;charset=utf-8;base64,/);
  const taken = takeSourceMap(code, '/x/a.js');
  assert.equal(taken.code, 'let a = 1;\n');
  assert.deepEqual(taken.map, map);
  assert.deepEqual(takeSourceMap('let a = 1;\n', '/x/a.js'), { code: 'let a = 1;\n', map: undefined });
  const uri = `x;\n//# sourceMappingURL=data:application/json,${encodeURIComponent(JSON.stringify(map))}`;
  assert.deepEqual(takeSourceMap(uri, '/x/a.js').map, map);
  // A mention inside the code is not the trailing comment.
  const inner = 'const s = "//# sourceMappingURL=nope.map";\nf();\n';
  assert.equal(takeSourceMap(inner, '/x/a.js').code, inner);
});

test('a map file next to the module is read; a missing one is dropped', (t) => {
  const p = tmpProject({ 'a.js.map': JSON.stringify(map) });
  t.after(p.cleanup);
  assert.deepEqual(takeSourceMap('x;\n//# sourceMappingURL=a.js.map\n', join(p.dir, 'a.js')), {
    code: 'x;\n',
    map,
  });
  assert.deepEqual(takeSourceMap('x;\n//# sourceMappingURL=b.js.map', join(p.dir, 'a.js')), {
    code: 'x;\n',
    map: undefined,
  });
});

test("tsx's CommonJS wrapper is taken off and put back, shifting the map by its line", () => {
  const file = '/app/m.ts';
  const code = `__filename=${JSON.stringify(file)};(()=>{\nfunction f(){}\n})()\n`;
  const u = unwrapTsxCjs(code, file, { ...map, mappings: ';AAAA;AACA' });
  assert.ok(u);
  assert.equal(u.body, 'function f(){}\n');
  assert.equal(u.map?.mappings, 'AAAA;AACA');
  const [out, outMap] = u.wrap('X;function f(){}\n', { ...map, mappings: 'AAAA' });
  assert.equal(out, `__filename=${JSON.stringify(file)};(()=>{\nX;function f(){}\n})()\n`);
  assert.equal(outMap.mappings, ';AAAA');
  assert.equal(unwrapTsxCjs(code, '/app/other.ts', undefined), undefined, 'another file name');
  assert.equal(unwrapTsxCjs('function f(){}\n', file, undefined), undefined);
  assert.equal(
    unwrapTsxCjs(code, file, { ...map, mappings: 'AAAA' }),
    undefined,
    'mappings on the wrapper line',
  );
});
