// Function.prototype.toString under the loader (src/loader/source-text.ts): a real app, with express and router
// instrumented too, prints the text of its functions, its dependencies', an ES module's and a worker thread's; under
// the loader the texts are the ones a start without it prints, and a function shipped elsewhere as text runs there.
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { installSourceText } from '../../src/loader/source-text.js';
import { registerEntry, repoRoot, spawnNode, tmpProject } from '../helpers.js';
import { cleanEnv } from './app.js';

const APP = `const { Worker } = require('node:worker_threads');
const express = require('express');
const total = ({ a, b = 2 }, ...rest) => a + b + rest.length;
function twice(x) { 'use strict'
  return (y) => y * 2 * x; }
class Cart { #items = []; get size() { return this.#items.length } static of(...xs) { return new Cart(xs) }
  constructor(xs) { this.#items = xs; this.add = (x) => this.#items.push(x); } }
(async () => {
  const { scaled } = await import('./lib.mjs');
  const fns = { total, twice, inner: twice(3), Cart, size: Object.getOwnPropertyDescriptor(Cart.prototype, 'size').get,
    of: Cart.of, add: new Cart([]).add, scaled, express, Router: express.Router,
    handle: require('express/lib/application').handle };
  const texts = Object.fromEntries(Object.entries(fns).map(([k, f]) => [k, String(f)]));
  const own = Function.prototype.toString;
  let typeError;
  try { own.call({}); } catch (e) { typeError = e.constructor.name + ': ' + e.message; }
  const worker = await new Promise((resolve, reject) => {
    new Worker(require.resolve('./worker.cjs')).once('message', resolve).once('error', reject);
  });
  const revive = (f, ...args) => { try { return new Function('return ' + String(f))()(...args); } catch (e) { return e.name; } };
  console.log('OUT ' + JSON.stringify({
    texts, worker, typeError,
    native: [String(own), own.call(own), own.name, own.length, 'prototype' in own, total.toString === own],
    descriptor: Object.entries(Object.getOwnPropertyDescriptor(Function.prototype, 'toString')).filter(([k]) => k !== 'value'),
    shipped: revive(total, { a: 1 }, 7, 8),
    shippedTwice: ((g) => (typeof g === 'function' ? g(1) : g))(revive(twice, 5)),
  }));
})();
`;

const LIB = `export const scaled = async ({ by = 10 } = {}, ...xs) => xs.map((x) => x * by);
`;

const WORKER = `const { parentPort } = require('node:worker_threads');
const pick = ([first], fallback = null) => first ?? fallback;
parentPort.postMessage(String(pick));
`;

test('under the loader, instrumented functions give their text as written, in every thread', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'shop' }),
    'app.cjs': APP,
    'lib.mjs': LIB,
    'worker.cjs': WORKER,
  });
  t.after(p.cleanup);
  symlinkSync(join(repoRoot, 'node_modules'), join(p.dir, 'node_modules'));
  const run = async (args: string[], extra: Record<string, string> = {}) => {
    const child = spawnNode([...args, 'app.cjs'], {
      cwd: p.dir,
      env: cleanEnv(p.dir, { LIVEPATCH_INSTRUMENT: 'express,router', ...extra }),
    });
    t.after(() => child.kill());
    assert.equal(await child.exited, 0, child.stderr());
    return {
      out: JSON.parse(/^OUT (.*)$/m.exec(child.stdout())?.[1] ?? 'null'),
      warnings: child
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('livepatch:')),
    };
  };
  const plain = await run([]);
  const loaded = await run(['--import', registerEntry]);
  const raw = await run(['--import', registerEntry], { LIVEPATCH_SOURCE_TEXT: 'instrumented' });

  // The functions are instrumented (V8's own text shows the prologue), in the app, the ES module, express and
  // the worker.
  for (const [name, text] of [...Object.entries(raw.out.texts), ['worker', raw.out.worker]]) {
    assert.match(text as string, /__lp\$m\.f\d+/, `${name} is instrumented`);
  }
  // What it costs without the inverse: the function's text refers to a slot object that exists only in its module.
  assert.equal(raw.out.shipped, 'ReferenceError');
  assert.deepEqual(loaded.warnings, []);
  assert.deepEqual(loaded.out, plain.out);
  assert.equal(plain.out.shipped, 5);
  assert.equal(plain.out.shippedTwice, 10);
  assert.deepEqual(plain.out.native.slice(0, 5), [
    'function toString() { [native code] }',
    'function toString() { [native code] }',
    'toString',
    0,
    false,
  ]);
  assert.equal(
    plain.out.typeError,
    "TypeError: Function.prototype.toString requires that 'this' be a Function",
  );
});

test('on a warm start, a text the parser-free path answers does not load the instrumenter; one it cannot does', async (t) => {
  const p = tmpProject({
    'package.json': JSON.stringify({ name: 'di' }),
    'plain.cjs': `class Service { constructor(repo, log) { this.repo = repo; this.log = log; } run() { return [1].map((x) => x * 2); } }
console.log('OUT ' + JSON.stringify(String(Service)));
`,
    'moved.cjs': `const handler = ({ id }, ...rest) => id + rest.length;
console.log('OUT ' + JSON.stringify(String(handler)));
`,
  });
  t.after(p.cleanup);
  const start = async (file: string) => {
    const child = spawnNode(['--import', registerEntry, file], {
      cwd: p.dir,
      env: cleanEnv(p.dir, { NODE_DEBUG: 'livepatch' }),
    });
    t.after(() => child.kill());
    assert.equal(await child.exited, 0, child.stderr());
    return {
      text: JSON.parse(/^OUT (.*)$/m.exec(child.stdout())?.[1] ?? 'null') as string,
      loaded: /instrumenter loaded/.test(child.stderr()),
    };
  };
  for (const file of ['plain.cjs', 'moved.cjs']) await start(file); // fills the cache
  const plain = await start('plain.cjs');
  assert.match(plain.text, /^class Service \{ constructor\(repo, log\) \{ this\.repo = repo;/);
  assert.ok(!plain.text.includes('__lp$'), plain.text);
  assert.equal(plain.loaded, false, 'the instrumenter was loaded for a text that needs no parser');
  const moved = await start('moved.cjs');
  assert.equal(moved.text, '({ id }, ...rest) => id + rest.length');
  assert.equal(moved.loaded, true, 'moved parameters are put back by the parser');
});

test('toString is wrapped once per thread, and a failing inverse keeps the text V8 has', (t) => {
  const descriptor = Object.getOwnPropertyDescriptor(Function.prototype, 'toString') as PropertyDescriptor;
  const key = Symbol.for('livepatch.sourceText');
  t.after(() => {
    Object.defineProperty(Function.prototype, 'toString', descriptor);
    delete (globalThis as Record<symbol, unknown>)[key];
  });
  const seen: string[] = [];
  assert.equal(
    installSourceText((text) => {
      seen.push(text);
      throw new Error('no parser here');
    }),
    true,
  );
  // A second copy of livepatch in the process finds the first one's wrapper and leaves it.
  assert.equal(
    installSourceText(() => 'second copy'),
    false,
  );
  const slotted = new Function('return 1; __lp$m');
  const plain = (x: number) => x + 1;
  assert.equal(String(plain), descriptor.value.call(plain));
  assert.equal(String(slotted), descriptor.value.call(slotted), 'the text as V8 has it');
  assert.equal(String(slotted), descriptor.value.call(slotted), 'asked once per function');
  assert.deepEqual(seen, [descriptor.value.call(slotted)]);
  assert.equal(Object.getOwnPropertyDescriptor(Function.prototype, 'toString')?.enumerable, false);
});
