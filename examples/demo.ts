// `npm run demo`: a running shop service gets a bug fixed, reverted and removed live, under load, without a restart.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const register = join(root, 'dist/src/loader/register.js');
const cliMain = join(root, 'dist/src/cli/main.js');
const shop = join(root, 'examples/shop/server.js');
const fix = join(root, 'examples/fix-negative-qty.js');
const CLIENTS = 4;

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const good = (s: string) => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s);
const bad = (s: string) => (process.stdout.isTTY ? `\x1b[31m${s}\x1b[0m` : s);
const say = (s = '') => console.log(s);
let step = 0;
const heading = (s: string) => say(`\n${bold(`${++step}. ${s}`)}`);

// A private control directory and no installed patches: the demo touches nothing of the user's.
const scratch = mkdtempSync(join(tmpdir(), 'livepatch-demo-'));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  XDG_RUNTIME_DIR: scratch,
  LIVEPATCH_INSTALL_DIR: join(scratch, 'installed'),
  LIVEPATCH_CACHE: 'off',
};
delete env['LIVEPATCH_TRUSTED_KEYS'];
delete env['NODE_OPTIONS'];

let service: ChildProcess | undefined;
const problems: string[] = [];

function cleanup(): void {
  if (service && service.exitCode === null) service.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
}

function get(port: number, path: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Runs the real `livepatch` CLI and shows its output indented, as the operator would see it. */
function livepatch(args: string[]): Promise<{ code: number; out: string }> {
  say(
    `   $ livepatch ${args.map((a) => (a.startsWith('/') ? relative(process.cwd(), a) || a : a)).join(' ')}`,
  );
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cliMain, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const show = (d: string) => {
      out += d;
      for (const line of d.split('\n')) if (line.trim() !== '') say(`   │ ${line}`);
    };
    p.stdout.setEncoding('utf8').on('data', show);
    p.stderr.setEncoding('utf8').on('data', show);
    p.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

interface Load {
  requests: number;
  failures: number;
  stop: () => Promise<void>;
}

/** CLIENTS keep-alive clients asking for a valid quote in a loop; anything but the right answer is a failure. */
function driveLoad(port: number): Load {
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const state: Load = { requests: 0, failures: 0, stop: async () => {} };
  let running = true;
  const client = async () => {
    while (running) {
      try {
        const r = await get(port, '/quote?item=book&qty=2', agent);
        state.requests++;
        if (r.status !== 200 || JSON.parse(r.body).total !== '25.00') state.failures++;
      } catch {
        state.requests++;
        state.failures++;
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);
  state.stop = async () => {
    running = false;
    await Promise.all(clients);
    agent.destroy();
  };
  return state;
}

async function probe(port: number, expectFixed: boolean): Promise<void> {
  const r = await get(port, '/quote?item=book&qty=-3');
  const fixed = r.status === 400;
  const verdict = fixed
    ? good('✓ refused: the fix is live')
    : bad(`✗ the shop would pay the customer ${JSON.parse(r.body).total?.replace('-', '') ?? '?'}`);
  say(`   GET /quote?item=book&qty=-3  →  ${r.status} ${r.body}`);
  say(`   ${verdict}`);
  if (fixed !== expectFixed)
    problems.push(`expected the bug to be ${expectFixed ? 'fixed' : 'present'}, got ${r.status} ${r.body}`);
}

async function main(): Promise<void> {
  const started = Date.now();
  say(bold('livepatch demo: fix a bug in a running Node.js service, without restarting it'));

  heading('Start the shop service under the livepatch loader');
  say('   $ node --import livepatch/register examples/shop/server.js');
  service = spawn(process.execPath, ['--import', register, shop], {
    env: { ...env, LIVEPATCH_NAME: 'shop' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const pid = service.pid as number;
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    service?.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    service?.on('exit', (code) => reject(new Error(`the shop exited (${code}) before listening`)));
    setTimeout(() => reject(new Error('the shop did not start within 10 s')), 10_000).unref();
  });
  say(`   shop listening on http://127.0.0.1:${port}, pid ${pid}`);
  say(`   GET /quote?item=book&qty=2   →  ${(await get(port, '/quote?item=book&qty=2')).body}`);

  heading(`Drive load: ${CLIENTS} keep-alive clients asking for quotes, non-stop, until the end`);
  const load = driveLoad(port);
  await new Promise((r) => setTimeout(r, 500));
  say(`   ${load.requests} requests so far, ${load.failures} failed`);

  heading('The bug: nothing checks the quantity, so a negative one gives a negative total');
  await probe(port, false);

  heading('Live-patch it: the fix is a small ES module (examples/fix-negative-qty.js)');
  const loaded = await livepatch(['load', fix, '--pid', String(pid)]);
  if (loaded.code !== 0) problems.push(`livepatch load exited ${loaded.code}`);
  const transition = /transition complete \(([^)]+)\)/.exec(loaded.out)?.[1] ?? '?';
  await probe(port, true);
  say(`   ${load.requests} requests so far, ${load.failures} failed`);

  heading('What is patched now: the sysfs-style tree, and the one-screen status');
  const listed = await livepatch(['list', '--pid', String(pid)]);
  if (listed.code !== 0) problems.push(`livepatch list exited ${listed.code}`);
  const status = await livepatch(['status']);
  if (status.code !== 0) problems.push(`livepatch status exited ${status.code}`);

  heading('Revert: disable the patch, and the old code runs again');
  const disabled = await livepatch(['disable', 'fix-negative-qty', '--pid', String(pid)]);
  if (disabled.code !== 0) problems.push(`livepatch disable exited ${disabled.code}`);
  await probe(port, false);

  heading('Remove it');
  const unloaded = await livepatch(['unload', 'fix-negative-qty', '--pid', String(pid)]);
  if (unloaded.code !== 0) problems.push(`livepatch unload exited ${unloaded.code}`);

  await new Promise((r) => setTimeout(r, 300));
  await load.stop();
  if (load.failures > 0) problems.push(`${load.failures} requests failed under load`);
  if (service.exitCode !== null) problems.push('the service exited');

  const seconds = (Date.now() - started) / 1000;
  say(`\n${bold('Summary')}`);
  say(`   requests served under load: ${load.requests}, failed: ${load.failures}`);
  say(`   patching transition: ${transition}`);
  say(`   the service was never restarted: pid ${pid} throughout (${seconds.toFixed(1)} s in all)`);
  if (problems.length > 0) {
    say(bad(`\ndemo FAILED:\n${problems.map((p) => `   - ${p}`).join('\n')}`));
    process.exitCode = 1;
  } else say(good('\ndemo passed'));
}

main()
  .catch((e: unknown) => {
    console.error(bad(`demo FAILED: ${e instanceof Error ? e.message : String(e)}`));
    process.exitCode = 1;
  })
  .finally(cleanup);
