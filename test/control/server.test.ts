// The control server in real processes: modes and ownership, refusal to start, other users, fuzzed frames, concurrency.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import { encodeFrame } from '../../src/control/frame.js';
import { fixture, registerEntry, spawnNode } from '../helpers.js';
import { get, lpEnv, startApp } from './harness.js';

const isRoot = process.getuid?.() === 0;

test('socket 0600 in a 0700 directory, with the metadata discovery needs', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp, { LIVEPATCH_NAME: 'shop' });
  const dir = statSync(lp.controlDir);
  assert.equal(dir.mode & 0o777, 0o700);
  assert.equal(dir.uid, process.getuid?.());
  const sock = statSync(join(lp.controlDir, `${app.pid}.sock`));
  assert.ok(sock.isSocket());
  assert.equal(sock.mode & 0o777, 0o600);
  const meta = JSON.parse(readFileSync(join(lp.controlDir, `${app.pid}.json`), 'utf8'));
  assert.equal(meta.pid, app.pid);
  assert.equal(meta.name, 'shop');
  assert.equal(meta.node, process.version);
  assert.match(meta.argv.join(' '), /server\.js/);
  assert.ok(Date.parse(meta.startedAt) <= Date.now());
  assert.match(meta.livepatch, /^\d+\.\d+\.\d+/);
});

test('a private patch directory left by an earlier process with the same pid is emptied at start', async (t) => {
  const lp = lpEnv(t);
  mkdirSync(lp.controlDir, { mode: 0o700 });
  // exec keeps the shell's pid: the stale directory is made for the very pid the app will have.
  const script = `mkdir -m 700 "$D/$$.d" && echo old > "$D/$$.d/stale.mjs" && exec "$N" --import "$R" "$A"`;
  const proc = spawn('sh', ['-c', script], {
    env: {
      ...lp.env,
      D: lp.controlDir,
      N: process.execPath,
      R: registerEntry,
      A: fixture('cli/app/server.js'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => proc.kill('SIGKILL'));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout
      .setEncoding('utf8')
      .on('data', (d: string) => (out += d) && /port \d+/.test(out) && resolve());
    proc.on('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  const dir = join(lp.controlDir, `${proc.pid}.d`);
  assert.ok(existsSync(dir));
  assert.deepEqual(readdirSync(dir), []);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});

test('the server does not keep the process alive, and cleans up when it exits', async (t) => {
  const lp = lpEnv(t);
  const child = spawnNode(['--import', registerEntry, fixture('control/quick.js')], { env: lp.env });
  t.after(() => child.kill());
  const timer = setTimeout(() => child.kill(), 5000);
  assert.equal(await child.exited, 0, child.stderr());
  clearTimeout(timer);
  assert.match(child.stdout(), /done/);
  assert.ok(!existsSync(join(lp.controlDir, `${child.proc.pid}.sock`)));
  assert.ok(!existsSync(join(lp.controlDir, `${child.proc.pid}.json`)));
});

for (const [what, prepare, message] of [
  ['group-writable', (d: string) => chmodSync(d, 0o770), /writable by group or others \(mode 770\)/],
  ['owned by another user', (d: string) => chownSync(d, 65534, 65534), /owned by uid 65534/],
] as const) {
  test(
    `a control directory ${what} is refused with one warning, and the app runs`,
    { skip: !isRoot && what !== 'group-writable' },
    async (t) => {
      const lp = lpEnv(t);
      mkdirSync(lp.controlDir, { mode: 0o700 });
      prepare(lp.controlDir);
      const app = await startApp(t, lp);
      assert.equal((await get(app.port, '/')).body, '21');
      const warnings = app.child
        .stderr()
        .split('\n')
        .filter((l) => l.includes('livepatch'));
      assert.equal(warnings.length, 1, app.child.stderr());
      assert.match(warnings[0] ?? '', /control server refused to start: .*/);
      assert.match(warnings[0] ?? '', message);
      assert.ok(!existsSync(join(lp.controlDir, `${app.pid}.sock`)));
    },
  );
}

/** Tries to connect to `path` as uid 65534; resolves with the errno or 'connected'. */
function connectAs(uid: number, path: string): Promise<string> {
  const script = `require('net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); });`;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['-e', script], {
      uid,
      gid: uid,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.on('close', () => resolve(out.trim()));
  });
}

test(
  'another user cannot connect: the directory and then the socket refuse',
  { skip: !isRoot },
  async (t) => {
    const lp = lpEnv(t);
    const app = await startApp(t, lp);
    const sock = join(lp.controlDir, `${app.pid}.sock`);
    // As is: the run directory and the control directory are 0700.
    assert.equal(await connectAs(65534, sock), 'EACCES');
    // Even with the directories opened for traversal, the socket's own 0600 refuses.
    chmodSync(join(lp.root, 'run'), 0o711);
    chmodSync(lp.controlDir, 0o711);
    assert.equal(await connectAs(65534, sock), 'EACCES');
    // The owner still can (the check above is not failing for another reason).
    const c = await ControlClient.connect(sock);
    assert.equal(c.hello.pid, app.pid);
    c.close();
  },
);

/** A small deterministic PRNG so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function rawFrame(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Sends `frames` after a handshake on a raw socket; resolves with every answer until the server closes or goes quiet. */
function exchange(
  path: string,
  bytes: Buffer,
  quietMs = 300,
  want = Infinity,
): Promise<{ answers: unknown[]; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(path);
    const answers: unknown[] = [];
    let buf = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ answers, closed });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(false), quietMs);
    };
    s.on('connect', () => {
      s.write(bytes);
      arm();
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const n = buf.readUInt32BE(0);
        answers.push(JSON.parse(buf.subarray(4, 4 + n).toString('utf8')));
        buf = buf.subarray(4 + n);
      }
      if (answers.length >= want) {
        // All expected answers are in: a short wait shows there is no extra one.
        clearTimeout(timer);
        timer = setTimeout(() => done(false), 20);
      } else arm();
    });
    s.on('error', () => {});
    s.on('close', () => done(true));
  });
}

const hello = encodeFrame({ hello: 'livepatch', protocol: 1 });

test('handshake: wrong version, no handshake, junk — each answered, then closed', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const sock = join(lp.controlDir, `${app.pid}.sock`);
  const cases: [string, Buffer, RegExp][] = [
    [
      'protocol 99',
      encodeFrame({ hello: 'livepatch', protocol: 99 }),
      /unsupported protocol version '99' \(this process speaks 1\)/,
    ],
    ['a request first', encodeFrame({ id: 1, command: 'list' }), /expected a handshake first/],
    ['oversized first frame', Buffer.from([0xff, 0xff, 0xff, 0xff]), /exceeds the limit/],
  ];
  for (const [what, bytes, message] of cases) {
    const r = await exchange(sock, bytes);
    assert.equal(r.closed, true, what);
    assert.equal(r.answers.length, 1, what);
    const a = r.answers[0] as { ok: boolean; error: { code: string; message: string } };
    assert.equal(a.ok, false, what);
    assert.equal(a.error.code, 'EPROTO', what);
    assert.match(a.error.message, message, what);
  }
  assert.equal((await get(app.port, '/')).body, '21');
});

test('fuzz: random, wrong-typed, truncated and oversized frames get error answers; the app serves, the tree is unchanged', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const sock = join(lp.controlDir, `${app.pid}.sock`);
  const c0 = await ControlClient.connect(sock);
  await c0.request('load', {
    source: readFileSync(fixture('cli/patches/later-module.js')).toString('base64'),
    file: 'later-module.js',
  });
  const before = JSON.stringify(await c0.request('list'));
  c0.close();

  const rand = prng(20260401);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const values: unknown[] = [
    null,
    0,
    -1,
    1.5,
    '',
    'x',
    [],
    {},
    [1],
    { a: 1 },
    true,
    'list',
    '../../etc',
    2 ** 53,
  ];
  const commands = [
    'list',
    'load',
    'info',
    'enable',
    'disable',
    'remove',
    'force',
    'sysfs-write',
    'nope',
    '',
    'constructor',
    '__proto__',
  ];
  for (let round = 0; round < 40; round++) {
    const frames: Buffer[] = [hello];
    let expected = 0;
    const n = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) {
      const kind = Math.floor(rand() * 4);
      if (kind === 0) {
        // Random bytes with a correct length prefix: not JSON (or JSON of the wrong shape).
        frames.push(
          rawFrame(
            Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256))),
          ),
        );
      } else if (kind === 1) {
        frames.push(encodeFrame(pick(values)));
      } else {
        // A request with random id, command and args; mutating ones name patches that do not exist.
        const args = pick([
          undefined,
          null,
          [],
          'x',
          { name: pick(values) },
          { name: 'nope' },
          { path: pick(values), value: pick(values) },
          { source: pick(values) },
        ]);
        frames.push(
          encodeFrame({
            id: pick([1, 'a', null, {}, [], 2.5]),
            command: pick(commands),
            ...(args !== undefined ? { args } : {}),
          }),
        );
      }
      expected++;
    }
    const truncate = rand() < 0.3;
    let bytes = Buffer.concat(frames);
    if (truncate) bytes = bytes.subarray(0, bytes.length - 1 - Math.floor(rand() * 3));
    const r = await exchange(sock, bytes, 2000, 1 + expected - (truncate ? 1 : 0));
    const answers = r.answers.slice(1); // the hello answer
    assert.equal(
      answers.length,
      expected - (truncate ? 1 : 0),
      `round ${round}: answers for ${expected} frames`,
    );
    for (const a of answers) {
      const x = a as { ok?: boolean; error?: { code: string; message: string } };
      assert.equal(typeof x.ok, 'boolean', `round ${round}: ${JSON.stringify(a)}`);
      if (x.ok === false) assert.match(x.error?.code ?? '', /^E[A-Z]+$/);
    }
  }
  // Oversized: answered once, then the connection is closed.
  const big = await exchange(sock, Buffer.concat([hello, Buffer.from([0x7f, 0, 0, 0])]));
  assert.equal(big.closed, true);
  assert.match((big.answers[1] as { error: { message: string } }).error.message, /exceeds the limit/);

  assert.equal((await get(app.port, '/')).body, '21');
  const c1 = await ControlClient.connect(sock);
  assert.equal(JSON.stringify(await c1.request('list')), before);
  c1.close();
});

test('two commands at once are serialized: the same patch sent twice loads once', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const sock = join(lp.controlDir, `${app.pid}.sock`);
  const [a, b] = await Promise.all([ControlClient.connect(sock), ControlClient.connect(sock)]);
  const source = readFileSync(fixture('cli/patches/later-module.js')).toString('base64');
  const other = readFileSync(fixture('cli/patches/later-module-2.js')).toString('base64');
  const results = (await Promise.all([
    a.request('load', { source, file: 'later-module.js' }),
    b.request('load', { source, file: 'later-module.js' }),
    b.request('load', { source: other, file: 'later-module-2.js' }),
  ])) as { name: string; already: boolean }[];
  assert.deepEqual(results.map((r) => `${r.name}:${r.already}`).sort(), [
    'later-module-2:false',
    'later-module:false',
    'later-module:true',
  ]);
  const tree = (await a.request('list')) as { patches: { name: string }[] };
  assert.deepEqual(
    tree.patches.map((p) => p.name),
    ['later-module', 'later-module-2'],
  );
  a.close();
  b.close();
});

test('connections that never say hello make room for the operator; live clients past the limit are told why', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const sock = join(lp.controlDir, `${app.pid}.sock`);
  const idle = await Promise.all(
    Array.from(
      { length: 40 },
      () =>
        new Promise<ReturnType<typeof connect>>((resolve) => {
          const s = connect(sock, () => resolve(s));
          s.on('error', () => {});
        }),
    ),
  );
  t.after(() => idle.forEach((s) => s.destroy()));
  const client = await ControlClient.connect(sock, 5_000);
  assert.deepEqual(await client.request('list'), { patches: [] });
  const clients = [client];
  t.after(() => clients.forEach((c) => c.close()));
  for (let i = 1; i < 32; i++) clients.push(await ControlClient.connect(sock, 5_000));
  await assert.rejects(ControlClient.connect(sock, 5_000), {
    code: 'EBUSY',
    message: /too many control connections \(32\)/,
  });
  assert.equal((await get(app.port, '/')).body, '21');
});
