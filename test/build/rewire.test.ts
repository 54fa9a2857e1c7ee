// The rewiring of a changed function, checked against the new code itself: the replacement, given the module's
// bindings, must compute exactly what the new version computes — through shadowing, patterns, labels and keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildPatch } from '../../src/build/index.js';
import { tmpProject } from '../helpers.js';

const HEAD = `'use strict';
let count = 0;
const seen = new Set();
function helper(x) {
  return x * 2;
}
`;

const NEW_BODY = `function tricky(input) {
  const out = [];
  count++;
  seen.add(input);
  out.push(helper(input));
  {
    const helper = (y) => y + 1000;
    out.push(helper(1));
  }
  try {
    throw 5;
  } catch (count) {
    out.push(count);
  }
  for (let seen = 0; seen < 1; seen++) out.push(seen);
  const o = { count, helper: 1, [helper(1)]: 2 };
  out.push(o.count, o.helper, o[2]);
  const { a = count } = {};
  out.push(a);
  lbl: for (;;) {
    break lbl;
  }
  out.push(typeof undeclaredGlobal, typeof count);
  [count] = [count + 10];
  out.push(count, seen.size);
  return out;
}
module.exports = { tricky, state: () => count };
`;

test('build: a rewired replacement computes what the new code computes', async (t) => {
  const pkg = JSON.stringify({ name: 'tricky', version: '1.0.0' });
  const oldP = tmpProject({
    'package.json': pkg,
    'lib.js': `${HEAD}function tricky(input) {\n  return input;\n}\nmodule.exports = { tricky, state: () => count };\n`,
  });
  const newP = tmpProject({ 'package.json': pkg, 'lib.js': HEAD + NEW_BODY });
  t.after(oldP.cleanup);
  t.after(newP.cleanup);

  const expected = (
    createRequire(join(newP.dir, 'x.js'))('./lib.js') as { tricky: (n: number) => unknown[] }
  ).tricky(3);
  assert.deepEqual(expected, [6, 1001, 5, 0, 1, 1, 2, 1, 'undefined', 'number', 11, 1]);

  const out = join(oldP.dir, 'fix.mjs');
  const r = await buildPatch({ old: oldP.dir, new: newP.dir, output: out, name: 'tricky' });
  assert.deepEqual(r.refusals, []);
  // Evaluate the patch without a process around it: defineLivepatch is the identity here, the bindings are an
  // accessor object over plain variables, as the instrumenter's header makes them.
  const text = readFileSync(out, 'utf8').replace(
    "import { defineLivepatch } from 'livepatch';",
    'const defineLivepatch = (spec) => spec;',
  );
  const standalone = join(oldP.dir, 'standalone.mjs');
  writeFileSync(standalone, text);
  const spec = (await import(pathToFileURL(standalone).href)).default as {
    objects: { funcs: { name: string; factory: (ctx: unknown) => (n: number) => unknown[] }[] }[];
  };
  const func = spec.objects[0]?.funcs[0];
  assert.equal(func?.name, 'tricky');
  let count = 0;
  const seen = new Set<number>();
  const helper = (x: number) => x * 2;
  const bindings = {
    get count() {
      return count;
    },
    set count(v: number) {
      count = v;
    },
    get seen() {
      return seen;
    },
    get helper() {
      return helper;
    },
  };
  const replacement = func.factory({ bindings, scope: () => undefined, original: () => undefined });
  assert.deepEqual(replacement(3), expected);
  assert.equal(count, 11, "the module's own variable was written");
  assert.deepEqual([...seen], [3]);
});
