// End-to-end: bad usage, bad patches and stalled transitions — each a clear message and the right exit code.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliEntry, fixture, spawnNode } from '../helpers.js';
import { cli, cliJson, get, lpEnv, startApp } from '../control/harness.js';

const patch = (name: string) => fixture('cli/patches', name);

test('bad usage exits 2 and says what is wrong', async (t) => {
  const lp = lpEnv(t);
  const cases: [string[], RegExp][] = [
    [[], /usage: livepatch COMMAND/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['load'], /'load' needs a PATCH file/],
    [['load', 'a.js', 'b.js'], /'load' takes one a PATCH file, got 2/],
    [['list', '--pid', 'abc'], /'--pid' expects a process id, not 'abc'/],
    [['list', '--bogus'], /unknown option '--bogus'/],
    [['load', patch('fix-price.js'), '--timeout', '0'], /'--timeout' expects seconds > 0/],
    [['ps', 'extra'], /'ps' takes no argument/],
    [['run', 'node', 'app.js'], /'run' takes no argument/],
    [['run'], /'run' needs a command after '--'/],
    [['sysfs'], /'sysfs' takes PATH \[VALUE\]/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(lp, args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr + r.stdout, message, args.join(' '));
  }
  assert.equal((await cli(lp, ['help'])).code, 0);
  assert.match((await cli(lp, ['version'])).stdout, /^\d+\.\d+\.\d+\n$/);
  const norun = await cli(lp, ['run', '--', '/nonexistent/binary']);
  assert.equal(norun.code, 1);
  assert.match(norun.stderr, /cannot run '\/nonexistent\/binary'/);
  const j = await cli(lp, ['frobnicate', '--json']);
  assert.deepEqual(JSON.parse(j.stdout), {
    error: { code: 'EUSAGE', message: "unknown command 'frobnicate'" },
  });
});

test('no such process, no such file: exit 1', async (t) => {
  const lp = lpEnv(t);
  const none = await cli(lp, ['list']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no livepatch process is running/);
  const gone = await cli(lp, ['list', '--pid', '999999999']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no process 999999999/);
  const self = await cli(lp, ['list', '--pid', String(process.pid)]);
  assert.match(
    self.stderr,
    /process \d+ has no livepatch control socket \(was it started with 'livepatch run'/,
  );
  const file = await cli(lp, ['load', '/nonexistent/fix.js', '--pid', '1']);
  assert.equal(file.code, 1);
  assert.match(file.stderr, /cannot read patch '\/nonexistent\/fix\.js': ENOENT/);
  const j = await cliJson(lp, ['list', '--pid', '999999999', '--json']);
  assert.equal(j.error.code, 'ENOENT');
});

test('bad patches are refused with a clear error; the process serves and its tree is unchanged', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const pid = ['--pid', String(app.pid)];
  const tree = async () => (await cli(lp, ['list', ...pid, '--json'])).stdout;
  const before = await tree();
  const cases: [string, RegExp][] = [
    ['bad-syntax.js', /patch 'bad-syntax\.js' does not parse: Unexpected token/],
    ['throws.js', /patch 'throws\.js' failed to import: patch module exploded on import/],
    ['no-default.js', /patch 'no-default\.js' has no default export of defineLivepatch/],
    ['bad-name.js', /invalid patch name '\.\.\/evil': use 1 to 64 of \[a-z0-9_-\]/],
    ['missing-func.js', /noSuchFunction.*\n {2}hint: 'livepatch symbols --pid \d+' lists the exact names/],
    [
      'bad-hash.js',
      /fixture-shop\/server\.js.*0000000000000000000000000000000000000000000000000000000000000000/s,
    ],
  ];
  for (const [file, message] of cases) {
    const r = await cli(lp, ['load', patch(file), ...pid]);
    assert.equal(r.code, 1, `${file}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message, file);
    assert.equal((await get(app.port, '/')).body, '21', file);
    assert.equal(await tree(), before, file);
  }
  const hash = await cliJson(lp, ['load', patch('bad-hash.js'), ...pid, '--json']);
  assert.equal(hash.error.code, 'EHASH');
  for (const [args, message] of [
    [['info', '../x'], /invalid patch name '\.\.\/x'/],
    [['enable', '../../etc/passwd'], /invalid patch name/],
    [['unload', 'Nope!'], /not loaded|invalid patch name/],
    [['enable', 'nope'], /no such patch 'nope'/],
    [['force', 'nope'], /no such patch 'nope'/],
    [['disable', 'nope'], /no such patch 'nope'/],
  ] as [string[], RegExp][]) {
    const r = await cli(lp, [...args, ...pid]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
  assert.equal(await tree(), before);

  // A patch for a module that is not loaded is accepted and waits for it, as in the kernel.
  const later = await cli(lp, ['load', patch('later-module.js'), ...pid]);
  assert.equal(later.code, 0, later.stderr);
  assert.match(
    (await cli(lp, ['list', ...pid])).stdout,
    /later-module \[enabled\].*\n {4}fixture-shop\/not-loaded-yet\.js {2}\(not loaded yet/,
  );
});

test('a stalled transition: exit 3 with the stalled tasks and what to do; it completes when they end; force', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const pid = ['--pid', String(app.pid)];
  const slow = get(app.port, '/slow');
  await app.child.waitFor(/held #1/);
  const r = await cli(lp, ['load', patch('fix-price.js'), ...pid, '--timeout', '0.5']);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /patch transition of 'fix-price' has stalled after [\d.]+ (ms|s): 1 task still runs code of the old universe/,
  );
  assert.match(r.stderr, /TASK +KIND +AGE +WHAT +ENTERED\n +\d+ +http +[\d.]+ m?s +GET \/slow +\S+/);
  assert.match(r.stderr, /livepatch disable fix-price --pid \d+/);
  assert.match(r.stderr, /livepatch force fix-price --pid \d+/);
  const list = await cliJson(lp, ['list', ...pid, '--json']);
  assert.equal(list.patches[0].transition, true);
  assert.match((await cli(lp, ['list', ...pid])).stdout, /fix-price \[enabling\.\.\.\]/);
  // New requests already run the new code; the held one ends in the old universe, then the transition completes.
  assert.equal((await get(app.port, '/')).body, '20');
  // Another load waits for the running transition (EBUSY is retried, as kpatch does), then goes ahead.
  const waiting = spawnNode([cliEntry, 'load', patch('later-module.js'), ...pid, '--timeout', '10'], {
    env: lp.env,
  });
  t.after(() => waiting.kill());
  // Release the held request only once the second load has been told to wait.
  for (let i = 0; i < 200 && !/waiting up to/.test(waiting.stderr()); i++)
    await new Promise((res) => setTimeout(res, 50));
  assert.match(
    waiting.stderr(),
    /patch 'fix-price' is in transition; wait, or reverse it first; waiting up to 10\.0 s/,
  );
  await get(app.port, '/release');
  assert.equal(await waiting.exited, 0, waiting.stderr());
  assert.match(waiting.stdout(), /patched 'later-module': transition complete/);
  assert.equal((await slow).body, 'slow 11');
  const json = await cliJson(lp, ['load', patch('fix-price.js'), ...pid, '--json']);
  assert.equal(json.already, true);
  for (let i = 0; i < 50 && (await cliJson(lp, ['list', ...pid, '--json'])).patches[0].transition; i++)
    await new Promise((res) => setTimeout(res, 100));
  assert.equal((await cliJson(lp, ['list', ...pid, '--json'])).patches[0].transition, false);
  assert.equal((await cli(lp, ['unload', 'later-module', ...pid])).code, 0);

  // Stall the way back, then force it.
  const slow2 = get(app.port, '/slow');
  await app.child.waitFor(/held #2/);
  const d = await cli(lp, ['unload', 'fix-price', ...pid, '--timeout', '0.3', '--json']);
  assert.equal(d.code, 3);
  assert.equal(JSON.parse(d.stdout).stalled.length, 1);
  const f = await cli(lp, ['force', 'fix-price', ...pid]);
  assert.equal(f.code, 0, f.stderr);
  assert.match(
    f.stdout,
    /forced the transition of 'fix-price' in pid \d+ to complete: 1 task that had not switched was marked switched/,
  );
  assert.match((await cli(lp, ['list', ...pid])).stdout, /fix-price \[disabled\]/);
  await get(app.port, '/release');
  await slow2;
});

test('a patch whose import never finishes is given up on, and the next command runs', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp, { LIVEPATCH_IMPORT_TIMEOUT_MS: '300' });
  const pid = ['--pid', String(app.pid)];
  const hanging = cli(lp, ['load', patch('hangs.js'), ...pid]);
  // The process has written its private copy once the import is under way: only then send the next command.
  const copies = join(lp.controlDir, `${app.pid}.d`);
  while (readdirSync(copies).length === 0) await new Promise((r) => setTimeout(r, 20));
  const next = cli(lp, ['load', patch('fix-price.js'), ...pid]);
  const [hung, after] = [await hanging, await next];
  assert.equal(hung.code, 1);
  assert.match(hung.stderr, /patch 'hangs\.js' did not finish importing within 0\.3 s/);
  assert.equal(after.code, 0, after.stderr);
  assert.equal((await get(app.port, '/')).body, '20');
});

test('load --revert-on-stall: a stalled patch is reversed and removed, and the process is as before', async (t) => {
  const lp = lpEnv(t);
  const app = await startApp(t, lp);
  const pid = ['--pid', String(app.pid)];
  const slow = get(app.port, '/slow');
  await app.child.waitFor(/held #1/);
  const r = await cli(lp, ['load', patch('fix-price.js'), ...pid, '--timeout', '0.5', '--revert-on-stall']);
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.match(
    r.stderr,
    /has stalled[^]*reverting: disabling 'fix-price' and removing it[^]*patch 'fix-price' was reverted and removed/,
  );
  assert.deepEqual(await cliJson(lp, ['list', ...pid, '--json']), { patches: [] });
  assert.equal((await get(app.port, '/')).body, '21');
  await get(app.port, '/release');
  assert.equal((await slow).body, 'slow 11');
});
