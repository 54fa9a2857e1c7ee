// Conformance of instrumented ES modules: same behaviour unpatched, replacements through exports and bindings.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fillSlot, loadFixture, type Loaded } from './harness.js';

describe('instrument: ES module conformance (forms.mjs)', () => {
  let m: Loaded;
  const cleanups: (() => void)[] = [];
  before(async () => {
    m = await loadFixture('forms.mjs', (fn) => cleanups.push(fn));
  });
  after(() => cleanups.forEach((fn) => fn()));

  it('unpatched, behaves as the original', () => {
    assert.deepEqual(m.instrumented.observe(), m.original.observe());
    assert.equal(m.reg.format, 'module');
  });

  it('names exports, the default export, static members and destructuring defaults', () => {
    const names = m.table.funcs.map((f) => f.name);
    for (const n of [
      'shout',
      'twice',
      'bump',
      'default',
      'get Store.instances',
      'Store.prototype.set',
      'pick',
    ]) {
      assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
    }
  });

  it('a patched export is what importers call, live', () => {
    const undo = fillSlot(m.reg, m.table, 'shout', () => (s: string) => `patched(${s})`);
    try {
      assert.equal(m.instrumented.shout('x'), 'patched(x)');
    } finally {
      undo();
    }
    assert.equal(m.instrumented.shout('x'), 'X!');
  });

  it('bindings: let is writable (and live for importers), imports and const are read-only', () => {
    const b = m.bindings;
    b.counter = 100;
    assert.equal(m.instrumented.counter, 100);
    assert.equal(b.basename, (b.basename as () => string) && b.basename);
    assert.equal(typeof b.basename, 'function');
    assert.equal(Object.getOwnPropertyDescriptor(b, 'basename')?.set, undefined);
    assert.equal(Object.getOwnPropertyDescriptor(b, 'config')?.set, undefined);
    (b.config as { suffix: string }).suffix = '?';
    assert.equal(m.instrumented.shout('q'), 'Q?');
    assert.equal(b.hits, m.instrumented.readHits());
  });
});
