// Helpers for the soak and fault tests: a fixture app per test, the real CLI, and the tree's coherence rules.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  connectApp,
  soakEnv,
  soakFixtures,
  startSoakApp,
  type AppKind,
  type SoakApp,
  type SoakEnv,
} from '../../bench/soak/driver.js';
import type { ControlClient } from '../../src/control/client.js';
import { cliEntry } from '../helpers.js';

export interface Started {
  soak: SoakEnv;
  app: SoakApp;
  client: ControlClient;
}

/** A fixture app in its own control directory, with a connected client; all torn down after the test. */
export async function started(t: TestContext, kind: AppKind): Promise<Started> {
  const soak = soakEnv();
  t.after(soak.cleanup);
  const app = await startSoakApp(kind, soak);
  t.after(async () => {
    app.kill();
    await app.exited;
  });
  const client = await connectApp(app, soak);
  t.after(() => client.close());
  return { soak, app, client };
}

export interface CliRun {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or signal name) and the output. */
  done: Promise<{ code: number | string; stdout: string; stderr: string }>;
}

/** Starts the built `livepatch` CLI in the app's control directory; killed after the test if still running. */
export function spawnCli(t: TestContext, soak: SoakEnv, args: string[]): CliRun {
  const proc = spawn(process.execPath, [cliEntry, ...args], {
    env: soak.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | string; stdout: string; stderr: string }>((resolve) =>
    proc.on('close', (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr })),
  );
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return { proc, stdout: () => stdout, stderr: () => stderr, done };
}

export function cli(t: TestContext, soak: SoakEnv, args: string[]) {
  return spawnCli(t, soak, args).done;
}

/** A fixture patch rewritten for another app (module id) and name, written into the test's temp directory. */
export function patchFor(soak: SoakEnv, file: string, kind: AppKind): string {
  const text = readFileSync(join(soakFixtures, 'patches', file), 'utf8').replaceAll(
    'soak-apps/express-app.js',
    `soak-apps/${kind}-app.js`,
  );
  const out = join(soak.controlDir, '..', '..', `${kind}-${file}`);
  writeFileSync(out, text);
  return out;
}

export async function http(
  app: SoakApp,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: string }> {
  const r = await fetch(`${app.url}${path}`, {
    ...(init.method === 'POST' && init.body === undefined ? { body: '{}' } : {}),
    ...init,
    headers: { authorization: 'Bearer soak-writer', 'content-type': 'application/json' },
  });
  return { status: r.status, body: await r.text() };
}

interface TreeFunc {
  name: string;
  sympos: number;
}
interface TreeObject {
  name: string;
  patched: boolean;
  funcs: TreeFunc[];
}
export interface TreePatch {
  name: string;
  enabled: boolean;
  transition: boolean;
  replace: boolean;
  stack_order: number;
  objects: TreeObject[];
}

/** `livepatch list --json` over the real CLI, checked for coherence. */
export async function listTree(t: TestContext, soak: SoakEnv, pid: number): Promise<TreePatch[]> {
  const r = await cli(t, soak, ['list', '--pid', String(pid), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const tree = JSON.parse(r.stdout) as { patches: TreePatch[] };
  assertCoherent(tree.patches);
  return tree.patches;
}

/**
 * The rules any tree must keep, whatever happened: DESIGN.md §6 field types, stack orders, at most one
 * patch in transition, and outside a transition an enabled patch has every loaded object patched and a
 * disabled one none.
 */
export function assertCoherent(patches: TreePatch[]): void {
  const text = JSON.stringify(patches);
  // Active patches (enabled, or on their way in or out) stack 1..n; a disabled, settled one is off the stack (0).
  const active = patches.filter((p) => p.enabled || p.transition);
  assert.deepEqual(
    active.map((p) => p.stack_order).sort((a, b) => a - b),
    active.map((_, i) => i + 1),
    `stack orders: ${text}`,
  );
  for (const p of patches) if (!active.includes(p)) assert.equal(p.stack_order, 0, text);
  assert.ok(patches.filter((p) => p.transition).length <= 1, `two transitions: ${text}`);
  for (const p of patches) {
    assert.equal(typeof p.enabled, 'boolean', text);
    assert.equal(typeof p.transition, 'boolean', text);
    assert.match(p.name, /^[a-z0-9_-]{1,64}$/, text);
    for (const o of p.objects) {
      assert.equal(typeof o.patched, 'boolean', text);
      assert.ok(o.funcs.length > 0, text);
      if (!p.transition) assert.equal(o.patched, p.enabled, `object '${o.name}' of '${p.name}': ${text}`);
    }
  }
}

/** Polls the tree until no patch is in transition (or fails after `ms`). */
export async function settledTree(
  t: TestContext,
  soak: SoakEnv,
  pid: number,
  ms = 10_000,
): Promise<TreePatch[]> {
  const t0 = Date.now();
  for (;;) {
    const tree = await listTree(t, soak, pid);
    if (!tree.some((p) => p.transition)) return tree;
    assert.ok(Date.now() - t0 < ms, `still in transition after ${ms} ms: ${JSON.stringify(tree)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
