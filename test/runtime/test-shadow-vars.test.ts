// Port of the kernel's selftest test-shadow-vars.sh (test_klp_shadow_vars.c): the shadow variable API with
// pointers printed as PTR<n> in order of first appearance, compared line by line; plus warnings and lifetime.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { shadow } from '../../src/index.js';
import { getRuntime } from '../../src/runtime/index.js';

test('basic shadow variable API', () => {
  const lines: string[] = [];
  const ids = new Map<unknown, number>();
  const P = (v: unknown) => {
    if (v === undefined) return 'PTR0';
    if (!ids.has(v)) ids.set(v, ids.size + 1);
    return `PTR${ids.get(v)}`;
  };
  const log = (s: string) => lines.push(`test_klp_shadow_vars: ${s}`);
  const hex = (id: number) => `0x${id.toString(16)}`;
  type Data = { ref: object };
  const ctor = (_obj: object, data: Record<string, unknown>, ctorData: unknown) => {
    data.ref = ctorData as object;
    log(`shadow_ctor: ${P(data)} -> ${P(ctorData)}`);
  };
  const dtor = (obj: object, data: unknown) => log(`shadow_dtor(obj=${P(obj)}, shadow_data=${P(data)})`);
  const get = (obj: object, id: number) => {
    const r = shadow.get<Data>(obj, id);
    log(`klp_shadow_get(obj=${P(obj)}, id=${hex(id)}) = ${P(r)}`);
    return r;
  };
  const alloc = (how: 'alloc' | 'get_or_alloc', obj: object, id: number, d: object) => {
    const r =
      how === 'alloc' ? shadow.alloc<Data>(obj, id, ctor, d) : shadow.getOrAlloc<Data>(obj, id, ctor, d);
    log(`klp_shadow_${how}(obj=${P(obj)}, id=${hex(id)}), ctor=${P(ctor)}, ctor_data=${P(d)} = ${P(r)}`);
    return r;
  };
  const expectNull = (r: unknown) => {
    if (r === undefined) log('  got expected NULL result');
  };
  const expectData = (r: Data | undefined, d: object) => {
    if (r !== undefined && r.ref === d) log(`  got expected ${P(r)} -> ${P(d)} result`);
  };

  const A = 0x1234;
  const B = 0x1235;
  const objs = [{}, {}, {}];
  expectNull(get(objs[0]!, A));
  const vars: { a: Data; da: object; b: Data; db: object }[] = [];
  objs.forEach((o, i) => {
    const da = {};
    P(da); // the kernel module names the ctor data before the call: same numbering
    const a = alloc(i % 2 === 0 ? 'get_or_alloc' : 'alloc', o, A, da)!;
    const db = {};
    P(db);
    const b = alloc('alloc', o, B, db)!;
    vars.push({ a, da, b, db });
  });
  objs.forEach((o, i) => {
    expectData(get(o, A), vars[i]!.da);
    expectData(get(o, B), vars[i]!.db);
  });
  objs.forEach((o, i) => expectData(alloc('get_or_alloc', o, A, vars[i]!.da), vars[i]!.da));
  objs.forEach((o) => {
    shadow.free(o, A, dtor);
    log(`klp_shadow_free(obj=${P(o)}, id=${hex(A)}, dtor=${P(dtor)})`);
    expectNull(get(o, A));
  });
  objs.forEach((o, i) => expectData(get(o, B), vars[i]!.db));
  shadow.freeAll(B);
  log(`klp_shadow_free_all(id=${hex(B)}, dtor=${P(undefined)})`);
  objs.forEach((o) => expectNull(get(o, B)));

  const x = (s: string) => `test_klp_shadow_vars: ${s}`;
  const allocLines = (how: string, o: number, id: string, d: number, sv: number) => [
    x(`shadow_ctor: PTR${sv} -> PTR${d}`),
    x(`klp_shadow_${how}(obj=PTR${o}, id=${id}), ctor=PTR4, ctor_data=PTR${d} = PTR${sv}`),
  ];
  const getLines = (o: number, id: string, sv: number, d: number) => [
    x(`klp_shadow_get(obj=PTR${o}, id=${id}) = PTR${sv}`),
    x(`  got expected PTR${sv} -> PTR${d} result`),
  ];
  const nullLines = (o: number, id: string) => [
    x(`klp_shadow_get(obj=PTR${o}, id=${id}) = PTR0`),
    x('  got expected NULL result'),
  ];
  assert.deepEqual(lines, [
    ...nullLines(1, '0x1234'),
    ...allocLines('get_or_alloc', 1, '0x1234', 2, 3),
    ...allocLines('alloc', 1, '0x1235', 5, 6),
    ...allocLines('alloc', 9, '0x1234', 7, 8),
    ...allocLines('alloc', 9, '0x1235', 10, 11),
    ...allocLines('get_or_alloc', 14, '0x1234', 12, 13),
    ...allocLines('alloc', 14, '0x1235', 15, 16),
    ...getLines(1, '0x1234', 3, 2),
    ...getLines(1, '0x1235', 6, 5),
    ...getLines(9, '0x1234', 8, 7),
    ...getLines(9, '0x1235', 11, 10),
    ...getLines(14, '0x1234', 13, 12),
    ...getLines(14, '0x1235', 16, 15),
    x('klp_shadow_get_or_alloc(obj=PTR1, id=0x1234), ctor=PTR4, ctor_data=PTR2 = PTR3'),
    x('  got expected PTR3 -> PTR2 result'),
    x('klp_shadow_get_or_alloc(obj=PTR9, id=0x1234), ctor=PTR4, ctor_data=PTR7 = PTR8'),
    x('  got expected PTR8 -> PTR7 result'),
    x('klp_shadow_get_or_alloc(obj=PTR14, id=0x1234), ctor=PTR4, ctor_data=PTR12 = PTR13'),
    x('  got expected PTR13 -> PTR12 result'),
    x('shadow_dtor(obj=PTR1, shadow_data=PTR3)'),
    x('klp_shadow_free(obj=PTR1, id=0x1234, dtor=PTR17)'),
    ...nullLines(1, '0x1234'),
    x('shadow_dtor(obj=PTR9, shadow_data=PTR8)'),
    x('klp_shadow_free(obj=PTR9, id=0x1234, dtor=PTR17)'),
    ...nullLines(9, '0x1234'),
    x('shadow_dtor(obj=PTR14, shadow_data=PTR13)'),
    x('klp_shadow_free(obj=PTR14, id=0x1234, dtor=PTR17)'),
    ...nullLines(14, '0x1234'),
    ...getLines(1, '0x1235', 6, 5),
    ...getLines(9, '0x1235', 11, 10),
    ...getLines(14, '0x1235', 16, 15),
    x('klp_shadow_free_all(id=0x1235, dtor=PTR0)'),
    ...nullLines(1, '0x1235'),
    ...nullLines(9, '0x1235'),
    ...nullLines(14, '0x1235'),
  ]);
});

test('duplicate and failed allocations are refused with the kernel warning', () => {
  const rt = getRuntime();
  const since = rt.log.lines().at(-1)?.seq ?? 0;
  class Cart {}
  const cart = new Cart();
  assert.deepEqual(shadow.alloc(cart, 7), {});
  assert.equal(shadow.alloc(cart, 7), undefined);
  assert.equal(
    shadow.alloc(cart, 'total', () => {
      throw new Error('no memory');
    }),
    undefined,
  );
  assert.equal(shadow.get(cart, 'total'), undefined, 'a failed constructor leaves nothing');
  assert.equal(
    shadow.getOrAlloc(cart, 'n', () => 41),
    41,
    'a constructor may return the value to keep',
  );
  assert.equal(
    shadow.getOrAlloc(cart, 'n', () => 0),
    41,
    'get_or_alloc does not construct twice',
  );
  shadow.free(cart, 'missing'); // a no-op, as in the kernel
  assert.deepEqual(
    rt.log.lines(since).map((l) => l.line),
    [
      'livepatch: Duplicate shadow variable <Cart, 0x7>',
      "livepatch: Failed to construct shadow variable <Cart, 'total'> (no memory)",
    ],
  );
  assert.throws(() => shadow.get(42 as never, 1), TypeError);
});

test('a shadow variable dies with its object', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let freed = 0;
  const registry = new FinalizationRegistry(() => freed++);
  (() => {
    const data = shadow.alloc({}, 'big', () => ({ payload: new Array(1000).fill(1) }));
    registry.register(data!, 0);
  })();
  for (let i = 0; i < 20 && freed === 0; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(freed, 1, 'the data was collected with its object');
  shadow.freeAll('big'); // and freeAll copes with the collected entry
});
