// The runtime's rules in one process, table-driven where they are pure: spec validation, the errors of
// loading (each leaving nothing behind), replacements with bindings/original/scope, generators, flags going
// back to false, the registry shared by a second copy, and task() nesting.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { defineLivepatch, isLivepatch, task, type PatchSpec } from '../../src/index.js';
import { getRuntime } from '../../src/runtime/index.js';
import { installRegistry } from '../../src/runtime/registry.js';
import { instrument } from '../../src/instrument/index.js';
import { fixture } from '../helpers.js';

type Hand = {
  defineModule: (
    id: string,
    defs: Record<string, (...a: any[]) => any>,
    opts?: { hash?: string; bindings?: Record<string, unknown> },
  ) => { fns: Record<string, (...a: any[]) => any>; slots: Record<string, unknown> };
};
const { defineModule } = (await import(fixture('runtime', 'hand.mjs'))) as Hand;
const rt = getRuntime();
const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

/** Evaluates really instrumented ESM source (data: URL) and returns its namespace. */
async function esm(id: string, source: string): Promise<Record<string, any>> {
  const hash = createHash('sha256').update(source).digest('hex');
  const { code } = instrument(source, { id, hash, file: `/virtual/${id}`, format: 'module' });
  return (await import(`data:text/javascript,${encodeURIComponent(code)}`)) as Record<string, any>;
}

function cleanup(): void {
  for (const p of rt.tree().patches) {
    if (p.enabled) rt.disablePatch(p.name);
    rt.removePatch(p.name);
  }
}

test('defineLivepatch names the exact field that is wrong', () => {
  const f = () => 1;
  const cases: [unknown, string][] = [
    [null, 'patch: expected an object'],
    [{ name: 'Bad Name', objects: [] }, 'name: expected 1-64 characters of [a-z0-9_-]'],
    [{ name: 'p', objects: {} }, 'objects: expected an array'],
    [{ name: 'p', replace: 1, objects: [] }, 'replace: expected a boolean'],
    [{ name: 'p', description: 2, objects: [] }, 'description: expected a string'],
    [{ name: 'p', fixes: ['CVE-1', ''], objects: [] }, 'fixes: expected an array of non-empty strings'],
    [
      { name: 'p', objects: [{ module: 'm/a.js', funcs: [{ name: 'x', replacement: f }, { name: '' }] }] },
      'objects[0].funcs[1].name: expected a non-empty string',
    ],
    [
      { name: 'p', objects: [{ module: 'm/a.js', funcs: [{ name: 'x' }] }] },
      'objects[0].funcs[0]: expected exactly one of replacement or factory',
    ],
    [
      { name: 'p', objects: [{ module: 'm/a.js', funcs: [{ name: 'x', replacement: 1 }] }] },
      'objects[0].funcs[0].replacement: expected a function',
    ],
    [
      { name: 'p', objects: [{ module: 'm/a.js', funcs: [{ name: 'x', sympos: -1, replacement: f }] }] },
      'objects[0].funcs[0].sympos: expected a non-negative integer',
    ],
    [
      {
        name: 'p',
        objects: [
          {
            module: 'm/a.js',
            funcs: [
              { name: 'x', replacement: f },
              { name: 'x', sympos: 1, replacement: f },
            ],
          },
        ],
      },
      "objects[0].funcs[1].name: duplicate function 'x,1'",
    ],
    [
      { name: 'p', objects: [{ module: 'm/a.js', hash: 'xyz', funcs: [] }] },
      'objects[0].hash: expected a sha256 hex string (64 lowercase hex digits)',
    ],
    [
      {
        name: 'p',
        objects: [
          { module: 'm/a.js', funcs: [] },
          { module: 'm/a.js', funcs: [] },
        ],
      },
      "objects[1].module: duplicate object 'm/a.js'",
    ],
    [
      { name: 'p', objects: [{ funcs: [{ name: 'x', replacement: f }] }] },
      "objects[0].funcs: the 'process' object has no functions; name a module",
    ],
    [
      { name: 'p', objects: [{ module: 'm/a.js', funcs: [], callbacks: { prePatch: 1 } }] },
      'objects[0].callbacks.prePatch: expected a function',
    ],
    [
      { name: 'p', objects: [{ module: 'm/a.js', funcs: [], callbacks: { onLoad: f } }] },
      'objects[0].callbacks.onLoad: unknown field (expected one of prePatch, postPatch, preUnpatch, postUnpatch)',
    ],
    [
      { name: 'p', objects: [], states: [{ id: 0, version: 1 }] },
      'states[0].id: expected a positive integer',
    ],
    [
      { name: 'p', objects: [], extra: true },
      'extra: unknown field (expected one of name, description, fixes, replace, objects, states)',
    ],
  ];
  for (const [spec, message] of cases)
    assert.throws(() => defineLivepatch(spec as PatchSpec), { code: 'EINVAL', message }, message);
  const ok = defineLivepatch({
    name: 'ok',
    objects: [{ module: 'm/a.js', funcs: [{ name: 'x', replacement: f }] }],
  });
  assert.ok(isLivepatch(ok) && Object.isFrozen(ok) && Object.isFrozen(ok.objects[0]!.funcs));
  const described = defineLivepatch({ name: 'd', description: 'fix x', fixes: ['CVE-2026-1'], objects: [] });
  assert.equal(described.description, 'fix x');
  assert.deepEqual(described.fixes, ['CVE-2026-1']);
});

test('a failed load names module, function and hashes, and leaves nothing behind', () => {
  const m = defineModule('errs/a.js', { one: () => 1, two: () => 2 }, { hash: H1 });
  const since = rt.log.lines().at(-1)?.seq ?? 0;
  const r = () => 0;
  const cases: [PatchSpec, string, RegExp][] = [
    [
      { name: 'e1', objects: [{ module: 'errs/a.js', funcs: [{ name: 'nope', replacement: r }] }] },
      'ENOENT',
      /symbol 'nope' not found in symbol table of module 'errs\/a.js'/,
    ],
    [
      { name: 'e2', objects: [{ module: 'errs/a.js', hash: H2, funcs: [{ name: 'one', replacement: r }] }] },
      'EHASH',
      new RegExp(
        `module 'errs/a.js' does not match patch 'e2': loaded hash ${H1}, patch built against ${H2}`,
      ),
    ],
    [
      { name: 'e3', objects: [{ module: 'errs/a.js', funcs: [{ name: 'notraced', replacement: r }] }] },
      'EINVAL',
      /function 'notraced' in module 'errs\/a.js' cannot be patched: marked/,
    ],
    [
      { name: 'e4', objects: [{ module: 'errs/a.js', funcs: [{ name: 'one', sympos: 2, replacement: r }] }] },
      'EINVAL',
      /symbol position 2 for symbol 'one' in object 'errs\/a.js' not found/,
    ],
    // The second function fails: the first one must not stay patched.
    [
      {
        name: 'e5',
        objects: [
          {
            module: 'errs/a.js',
            funcs: [
              { name: 'one', replacement: r },
              {
                name: 'two',
                factory: () => {
                  throw new Error('boom');
                },
              },
            ],
          },
        ],
      },
      'EINVAL',
      /factory of 'two' for module 'errs\/a.js' failed: boom/,
    ],
  ];
  for (const [spec, code, message] of cases) {
    assert.throws(
      () => rt.loadPatch(spec),
      (e: any) => e.code === code && message.test(e.message),
      spec.name,
    );
    assert.deepEqual(rt.tree().patches, []);
    assert.equal(m.slots.f0, false);
    assert.equal(m.fns.one!(), 1);
  }
  assert.equal(
    rt.log.lines(since).filter((l) => l.line.includes('enabling patch')).length,
    0,
    'nothing was enabled',
  );

  rt.loadPatch({ name: 'dup', objects: [] });
  assert.throws(() => rt.loadPatch({ name: 'dup', objects: [] }), { code: 'EEXIST' });
  assert.throws(() => rt.removePatch('dup'), { code: 'EBUSY' });
  assert.throws(() => rt.enablePatch('dup'), { code: 'EINVAL' });
  assert.throws(() => rt.forcePatch('dup'), { code: 'EINVAL' });
  assert.throws(() => rt.disablePatch('missing'), { code: 'ENOENT' });
  cleanup();
});

test('EBUSY while another transition runs; a reversal is the only other move', async () => {
  defineModule('busy/a.js', { f: () => 'old' });
  rt.loadPatch({ name: 'b0', objects: [] });
  let release!: () => void;
  const held = task(() => new Promise<void>((r) => (release = r)), 'holder');
  rt.loadPatch({
    name: 'b1',
    objects: [{ module: 'busy/a.js', funcs: [{ name: 'f', replacement: () => 'new' }] }],
  });
  assert.equal(rt.transition()?.patch, 'b1');
  assert.deepEqual(
    rt.transition()!.tasks.map((t) => [t.kind, t.label]),
    [['task', 'holder']],
  );
  assert.throws(() => rt.loadPatch({ name: 'b2', objects: [] }), { code: 'EBUSY' });
  assert.throws(
    () => rt.sysfsWrite('b0/enabled', '0'),
    { code: 'EBUSY' },
    'another patch cannot be disabled',
  );
  assert.deepEqual(
    rt.tree().patches.map((p) => p.name),
    ['b0', 'b1'],
  );
  release();
  await held;
  assert.equal(await rt.waitForTransition(1000), true);
  cleanup();
});

test('replacements: factory with bindings, original and scope; generators; flags back to false', async () => {
  const mod = await esm(
    'repl/a.js',
    `let count = 10;
export function add(a, b) { count++; return a + b; }
export function* range(n) { for (let i = 0; i < n; i++) yield i; }
export function outer(k) { return function inner(x) { return x * k; }; }
export const arrow = (x) => x + 1;
export class Cart { total() { return 5; } }
export class Point { constructor(x) { this.x = x; } }
export class Point3 extends Point { constructor(x) { super(x); this.z = 0; } }
export function read() { return count; }`,
  );
  rt.loadPatch({
    name: 'repl',
    objects: [
      {
        module: 'repl/a.js',
        funcs: [
          {
            name: 'add',
            factory: (ctx) =>
              function add(this: unknown, a: number, b: number) {
                ctx.bindings.count = (ctx.bindings.count as number) + 100;
                return (ctx.original.call(this, a, b) as number) * 10;
              },
          },
          {
            name: 'range',
            factory: (ctx) =>
              function* range(n: number) {
                yield 'start';
                yield* ctx.original(n) as Iterable<number>;
              },
          },
          { name: 'outer>inner', factory: (ctx) => (x: number) => x * (ctx.scope().k as number) * 100 },
          { name: 'Cart.prototype.total', replacement: () => 7 },
          {
            name: 'Point',
            factory: (ctx) =>
              function Point(this: unknown, x: number) {
                return Reflect.construct(ctx.original, [x * 2], new.target) as object;
              },
          },
        ],
      },
    ],
  });
  assert.equal(mod.add(1, 2), 30, 'original ran the old body');
  assert.equal(mod.read(), 111, 'bindings wrote the module variable; the original body ran once');
  assert.deepEqual([...mod.range(3)], ['start', 0, 1, 2]);
  const inner = mod.outer(3);
  assert.equal(inner(2), 600, 'scope() read the captured k of this closure');
  assert.equal(new mod.Cart().total(), 7);
  const p = new mod.Point(2);
  assert.ok(p instanceof mod.Point);
  assert.equal(p.x, 4, 'the original constructor ran with the new argument');
  const p3 = new mod.Point3(1);
  assert.ok(p3 instanceof mod.Point3, 'a subclass keeps its prototype through the patched base constructor');
  assert.deepEqual({ ...p3 }, { x: 2, z: 0 });
  assert.equal(mod.arrow(1), 2);
  const syms = rt.symbols().modules.find((m) => m.id === 'repl/a.js')!;
  assert.ok(syms.funcs.some((f) => f.name === 'outer>inner'));
  rt.disablePatch('repl');
  assert.equal(mod.add(1, 2), 3);
  assert.deepEqual([...mod.range(2)], [0, 1]);
  rt.removePatch('repl');
  // Back to the fast path: every flag is false again.
  const reg = installRegistry();
  const inst = reg.instances.find((i) => i.id === 'repl/a.js')!;
  assert.deepEqual(
    Object.entries(inst.slots).filter(([k, v]) => k.startsWith('f') && v !== false),
    [],
  );
});

test("'original' of a function without SELF fails clearly at enable", async () => {
  const mod = await esm('noself/a.js', `export const obj = { m: function () { return 1; } };`);
  const sym = rt.symbols().modules.find((m) => m.id === 'noself/a.js')!.funcs[0]!;
  // Whether SELF exists is the instrumenter's call; the runtime's answer must follow the symbol table.
  const reg = installRegistry().instances.find((i) => i.id === 'noself/a.js')!;
  const self = reg.symbols().funcs[0]!.self;
  const spec: PatchSpec = {
    name: 'noself',
    objects: [{ module: 'noself/a.js', funcs: [{ name: sym.name, factory: (ctx) => ctx.original }] }],
  };
  if (self) {
    rt.loadPatch(spec);
    cleanup();
  } else {
    assert.throws(() => rt.loadPatch(spec), { code: 'EINVAL', message: /'original' is not available for/ });
  }
  assert.equal(mod.obj.m(), 1);
});

test('stacking: the newest patch wins, any may be disabled, replace retires the others', () => {
  const m = defineModule('stack/a.js', { f: () => 'orig', g: () => 'orig-g' });
  rt.loadPatch({
    name: 's1',
    objects: [
      {
        module: 'stack/a.js',
        funcs: [
          { name: 'f', replacement: () => 's1' },
          { name: 'g', replacement: () => 's1-g' },
        ],
      },
    ],
  });
  rt.loadPatch({
    name: 's2',
    objects: [{ module: 'stack/a.js', funcs: [{ name: 'f', replacement: () => 's2' }] }],
  });
  assert.equal(m.fns.f!(), 's2');
  rt.disablePatch('s1');
  assert.equal(m.fns.f!(), 's2', 'disabling a lower patch keeps the top');
  assert.equal(m.fns.g!(), 'orig-g');
  rt.enablePatch('s1');
  assert.equal(m.fns.f!(), 's1', 're-enabled, s1 is the newest now');
  assert.deepEqual(
    rt.tree().patches.map((p) => [p.name, p.stack_order]),
    [
      ['s2', 1],
      ['s1', 2],
    ],
  );
  rt.loadPatch({
    name: 's3',
    replace: true,
    objects: [{ module: 'stack/a.js', funcs: [{ name: 'g', replacement: () => 's3-g' }] }],
  });
  assert.deepEqual(
    rt.tree().patches.map((p) => [p.name, p.stack_order, p.objects[0]!.funcs.length]),
    [['s3', 1, 1]],
    'the replaced patches left the tree, the nops are gone',
  );
  assert.equal(m.fns.f!(), 'orig', 'a function the replacing patch does not name goes back to its original');
  assert.equal(m.fns.g!(), 's3-g');
  cleanup();
  assert.equal(m.slots.f0, false);
});

test('a second copy of livepatch uses the installed registry and runtime', () => {
  const reg = installRegistry();
  assert.equal(installRegistry(), reg);
  assert.equal((reg as { runtime: unknown }).runtime, rt);
  assert.equal(getRuntime(), rt);
  reg.noteModule({
    id: 'skip/a.js',
    hash: H1,
    file: '/x',
    status: 'skipped',
    reason: "uses the reserved '__lp$' prefix",
  });
  const note = rt.symbols().modules.find((m) => m.id === 'skip/a.js')!;
  assert.equal(note.status, 'skipped');
  assert.equal(note.reason, "uses the reserved '__lp$' prefix");
});

test('a note is read when it is listed, not when it is taken, and then once', () => {
  const reg = installRegistry();
  const reads = { id: 0, reason: 0 };
  reg.noteModule({
    get id() {
      reads.id++;
      return 'lazy/dep.js';
    },
    hash: '',
    file: '/lazy/dep.js',
    status: 'skipped',
    get reason() {
      reads.reason++;
      return "package 'lazy' is not named";
    },
  });
  assert.deepEqual(reads, { id: 0, reason: 0 }, 'taking the note read nothing');
  for (let i = 0; i < 2; i++) {
    const note = rt.symbols().modules.find((m) => m.file === '/lazy/dep.js')!;
    assert.equal(note.id, 'lazy/dep.js');
    assert.equal(note.reason, "package 'lazy' is not named");
  }
  assert.deepEqual(reads, { id: 1, reason: 1 }, 'listed twice, read once');
});

test('task(): a nested task inherits the universe of its parent', async () => {
  const m = defineModule('nest/a.js', { f: () => 'old' });
  // An old task holds the transition open.
  let releaseHolder!: () => void;
  const holder = task(() => new Promise<void>((r) => (releaseHolder = r)), 'holder');
  rt.loadPatch({
    name: 'nest',
    objects: [{ module: 'nest/a.js', funcs: [{ name: 'f', replacement: () => 'new' }] }],
  });
  // Started during the transition: the new universe, and tagged.
  let release!: () => void;
  const seen: string[] = [];
  const outer = task(async () => {
    seen.push(m.fns.f!());
    await new Promise<void>((r) => (release = r));
    seen.push(m.fns.f!());
    await task(async () => seen.push(m.fns.f!()), 'inner');
  }, 'outer');
  // Reverse: tasks starting now run the old code, but the outer task and its child stay in the new one.
  rt.disablePatch('nest');
  assert.equal(await task(async () => m.fns.f!(), 'fresh'), 'old');
  release();
  await outer;
  assert.deepEqual(seen, ['new', 'new', 'new']);
  releaseHolder();
  await holder;
  assert.equal(await rt.waitForTransition(1000), true);
  assert.equal(m.fns.f!(), 'old');
  cleanup();
});

test('node:http2 requests are tasks too', async () => {
  const { createServer, connect } = await import('node:http2');
  const m = defineModule('h2/a.js', { f: () => 'old' });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const slowArrived = new Promise<void>((r) => (arrived = r));
  const server = createServer(async (req, res) => {
    const first = m.fns.f!();
    if (req.url === '/slow') {
      arrived();
      await gate;
    }
    res.end(`${first},${m.fns.f!()}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = connect(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  const get = (path: string) =>
    new Promise<string>((resolve, reject) => {
      const s = client.request({ ':path': path });
      let body = '';
      s.setEncoding('utf8').on('data', (d: string) => (body += d));
      s.on('end', () => resolve(body));
      s.on('error', reject);
    });
  try {
    const slow = get('/slow');
    await slowArrived;
    rt.loadPatch({
      name: 'h2',
      objects: [{ module: 'h2/a.js', funcs: [{ name: 'f', replacement: () => 'new' }] }],
    });
    assert.deepEqual(
      rt.transition()!.tasks.map((t) => [t.kind, t.label]),
      [['http', 'GET /slow']],
    );
    assert.equal(await get('/fast'), 'new,new');
    release();
    assert.equal(await slow, 'old,old');
    assert.equal(await rt.waitForTransition(1000), true);
  } finally {
    release();
    client.destroy();
    server.close();
    cleanup();
  }
});

test('code outside any task, and a task started inside an old task, during a transition', async () => {
  const alwaysTag = Number(process.versions.node.split('.')[0]) >= 24;
  const m = defineModule('outside/a.js', { f: () => 'old' });
  let release!: () => void;
  const seen: string[] = [];
  const old = task(async () => {
    await new Promise<void>((r) => (release = r));
    seen.push(m.fns.f!());
    await task(async () => seen.push(m.fns.f!()), 'child');
  }, 'old');
  rt.loadPatch({
    name: 'outside',
    objects: [{ module: 'outside/a.js', funcs: [{ name: 'f', replacement: () => 'new' }] }],
  });
  // With every task tagged (AsyncContextFrame), code outside tasks switches at once; without, it cannot be
  // told apart from an old task and runs the old code until the transition completes (docs/runtime.md).
  assert.equal(m.fns.f!(), alwaysTag ? 'new' : 'old');
  release();
  await old;
  // The child of an old task inherits the old universe when the parent is known (always tagged); otherwise it
  // starts as a new task.
  assert.deepEqual(seen, alwaysTag ? ['old', 'old'] : ['old', 'new']);
  assert.equal(await rt.waitForTransition(1000), true);
  assert.equal(m.fns.f!(), 'new');
  cleanup();
});

test('atomic replace: nops exist only during its transition; old tasks keep the replaced code', async () => {
  const m = defineModule('nop/a.js', { f: () => 'orig-f', g: () => 'orig-g' });
  rt.loadPatch({
    name: 'old1',
    objects: [
      {
        module: 'nop/a.js',
        funcs: [
          { name: 'f', replacement: () => 'old1-f' },
          { name: 'g', replacement: () => 'old1-g' },
        ],
      },
    ],
  });
  let release!: () => void;
  const seen: string[] = [];
  const old = task(async () => {
    await new Promise<void>((r) => (release = r));
    seen.push(m.fns.f!(), m.fns.g!());
  }, 'old');
  rt.loadPatch({
    name: 'cum',
    replace: true,
    objects: [{ module: 'nop/a.js', funcs: [{ name: 'g', replacement: () => 'cum-g' }] }],
  });
  const during = rt.tree().patches.find((p) => p.name === 'cum')!;
  assert.deepEqual(
    during.objects[0]!.funcs.map((f) => [f.name, f.nop]),
    [
      ['g', false],
      ['f', true],
    ],
  );
  assert.deepEqual(await task(async () => [m.fns.f!(), m.fns.g!()], 'new'), ['orig-f', 'cum-g']);
  release();
  await old;
  assert.deepEqual(seen, ['old1-f', 'old1-g']);
  assert.equal(await rt.waitForTransition(1000), true);
  assert.deepEqual(
    rt.tree().patches.map((p) => [p.name, p.objects[0]!.funcs.map((f) => f.name)]),
    [['cum', ['g']]],
  );
  assert.deepEqual([m.fns.f!(), m.fns.g!()], ['orig-f', 'cum-g']);
  cleanup();
});

test('a reversed replace leaves the earlier patches as they were', async () => {
  const m = defineModule('nop/b.js', { f: () => 'orig' });
  rt.loadPatch({
    name: 'keep',
    objects: [{ module: 'nop/b.js', funcs: [{ name: 'f', replacement: () => 'keep' }] }],
  });
  let release!: () => void;
  const old = task(() => new Promise<void>((r) => (release = r)), 'old');
  rt.loadPatch({ name: 'cum2', replace: true, objects: [] });
  rt.disablePatch('cum2'); // reverses
  release();
  await old;
  assert.equal(await rt.waitForTransition(1000), true);
  assert.deepEqual(
    rt.tree().patches.map((p) => [p.name, p.enabled]),
    [
      ['keep', true],
      ['cum2', false],
    ],
  );
  assert.equal(m.fns.f!(), 'keep');
  cleanup();
});

test('a late instance with another hash loads unpatched, with a log line', () => {
  const since = rt.log.lines().at(-1)?.seq ?? 0;
  rt.loadPatch({
    name: 'late',
    objects: [{ module: 'late/a.js', hash: H1, funcs: [{ name: 'f', replacement: () => 'new' }] }],
  });
  const a = defineModule('late/a.js', { f: () => 'v1' }, { hash: H1 });
  const b = defineModule('late/a.js', { f: () => 'v2' }, { hash: H2 });
  assert.equal(a.fns.f!(), 'new');
  assert.equal(b.fns.f!(), 'v2');
  assert.deepEqual(
    rt.log
      .lines(since)
      .map((l) => l.line)
      .slice(-2),
    [
      "livepatch: applying patch 'late' to loading module 'late/a.js'",
      `livepatch: patch 'late' not applied to loading module 'late/a.js' (hash ${H2}, patch built against ${H1})`,
    ],
  );
  assert.deepEqual(rt.patchInfo('late').objects[0]!.instances, [{ file: '/virtual/late/a.js', hash: H1 }]);
  cleanup();
});
