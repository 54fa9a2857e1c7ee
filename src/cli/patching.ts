// The commands that change a process: load, enable, disable, unload, force — each following its transition.
import { basename } from 'node:path';
import type { ControlClient } from '../control/client.js';
import type { TaskView, TransitionView } from '../control/target.js';
import { isLivepatchError, LivepatchError } from '../errors.js';
import type { Options } from './args.js';
import type { Target } from './discover.js';
import { duration, table, type TreePatch } from './format.js';
import { checkLocally, readPatchBytes, readSignature } from './keys.js';
import { eachTarget, EXIT, type Io, type Outcome } from './session.js';

const POLL_MS = 100;

interface Followed {
  done: boolean;
  ms: number;
  tasks: TaskView[];
}

/**
 * Polls the process until the transition of `name` is over or `timeoutMs` passed, keeping one progress
 * line up to date (redrawn in place on a terminal, printed on change otherwise).
 */
export async function followTransition(
  c: ControlClient,
  name: string,
  timeoutMs: number,
  io: Io,
  quiet: boolean,
): Promise<Followed> {
  const t0 = Date.now();
  let lastLine = '';
  let lastCount = -1;
  let lastPrinted = 0;
  let tasks: TaskView[] = [];
  const show = (line: string, count: number) => {
    if (quiet || line === lastLine) return;
    lastLine = line;
    if (io.tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (count !== lastCount && Date.now() - lastPrinted >= 1000) {
      // In a log file, one line per second at most, and only when the count changed.
      lastCount = count;
      lastPrinted = Date.now();
      io.err(line);
    }
  };
  try {
    for (;;) {
      const tr = (await c.request('transition')) as TransitionView | null;
      if (tr === null || tr.patch !== name) return { done: true, ms: Date.now() - t0, tasks: [] };
      tasks = tr.tasks ?? [];
      const oldest = tasks.reduce<TaskView | undefined>(
        (a, b) => (a === undefined || b.ageMs > a.ageMs ? b : a),
        undefined,
      );
      show(
        `  ${tasks.length} task${tasks.length === 1 ? '' : 's'} left in the old universe` +
          (oldest ? ` (oldest: ${oldest.kind} ${oldest.label}, ${duration(oldest.ageMs)})` : ''),
        tasks.length,
      );
      if (Date.now() - t0 >= timeoutMs) return { done: false, ms: Date.now() - t0, tasks };
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    if (io.tty && lastLine !== '' && !quiet) process.stderr.write('\r\x1b[K');
  }
}

/**
 * Runs a command that the process refuses with EBUSY while another patch is in transition, again every
 * quarter second until `timeoutMs` (as kpatch retries insmod on EBUSY). Other errors pass through.
 */
async function retryBusy<T>(
  fn: () => Promise<T>,
  timeoutMs: number,
  io: Io,
  quiet: boolean,
  label: string,
): Promise<T> {
  const t0 = Date.now();
  let said = false;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!isLivepatchError(e) || e.code !== 'EBUSY' || Date.now() - t0 >= timeoutMs) throw e;
      if (!said && !quiet) io.err(`${label}${e.message}; waiting up to ${duration(timeoutMs)}...`);
      said = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function stalledReport(name: string, f: Followed, t: Target, target: string): string {
  const sel = `--pid ${t.pid}`;
  // `entered`: the patched functions the task already ran in its universe, i.e. why switching it now would mix.
  const entered = (k: TaskView) =>
    Array.isArray(k.entered) ? (k.entered as unknown[]).map(String).join(', ') : '';
  const rows = f.tasks.map((k) => [`  ${k.id}`, k.kind, duration(k.ageMs), k.label, entered(k) || '-']);
  return [
    `patch transition of '${name}' has stalled after ${duration(f.ms)}: ${f.tasks.length} task${f.tasks.length === 1 ? '' : 's'} still run${f.tasks.length === 1 ? 's' : ''} code of the old universe`,
    ...(rows.length > 0 ? [table([['  TASK', 'KIND', 'AGE', 'WHAT', 'ENTERED'], ...rows])] : []),
    `the patch stays in transition (${target}); what to do:`,
    `  - wait: each task switches when it ends; 'livepatch list ${sel}' shows the state`,
    `  - end the stalled work (close the long request or connection), then check again`,
    `  - reverse: 'livepatch disable ${name} ${sel}' takes the patch back out`,
    `  - force: 'livepatch force ${name} ${sel}' completes it now; unsafe if those tasks may mix old and new code`,
  ].join('\n');
}

async function finish(
  c: ControlClient,
  t: Target,
  name: string,
  verb: string,
  target: string,
  o: Options,
  io: Io,
  label: string,
  extra: Record<string, unknown>,
  spentMs = 0,
): Promise<Outcome> {
  // `--timeout` bounds the whole command: time the process already spent waiting for its worker threads counts.
  const followed = await followTransition(c, name, Math.max(0, o.timeout * 1000 - spentMs), io, o.json);
  const f = { ...followed, ms: followed.ms + spentMs };
  if (!f.done) {
    if (!o.json) io.err(label + stalledReport(name, f, t, target));
    return {
      code: EXIT.timeout,
      json: { name, ...extra, transition: true, stalled: f.tasks, waitedMs: f.ms },
    };
  }
  if (!o.json) io.out(`${label}${verb} '${name}': transition complete (${duration(f.ms)})`);
  return { code: EXIT.ok, json: { name, ...extra, transition: false, transitionMs: f.ms } };
}

/** What to do next, for the refusals an operator meets most (complaint: opaque rejections). */
function withHint(e: unknown, t: Target): unknown {
  if (!isLivepatchError(e)) return e;
  const hint =
    e.code === 'EHASH'
      ? `the running file is not the one the patch was made for; compare with 'livepatch symbols --pid ${t.pid}' and rebuild the patch against it`
      : e.code === 'ENOENT' && /symbol|function|sympos/i.test(e.message)
        ? `'livepatch symbols --pid ${t.pid}' lists the exact names that can be patched`
        : undefined;
  return hint === undefined ? e : new LivepatchError(e.code, `${e.message}\n  hint: ${hint}`, e.details);
}

export async function load(o: Options, io: Io, file: string): Promise<number> {
  const bytes = readPatchBytes(file);
  const signature = readSignature(file);
  checkLocally(bytes, signature, file);
  // Cluster primaries that took the patch in this command, and those of them a worker then refused it in.
  const took = new Map<number, string>();
  const refused = new Set<number>();
  const code = await eachTarget(
    o,
    io,
    false,
    async (c, t, label) => {
      try {
        const r = await loadOne(c, t, label);
        const json = r.json as { name?: string; already?: boolean };
        if (t.primary === undefined && json.already === false && json.name !== undefined)
          took.set(t.pid, json.name);
        return r;
      } catch (e) {
        if (t.primary !== undefined && took.has(t.primary)) refused.add(t.primary);
        throw e;
      }
    },
    'change',
  );
  // All or nothing across a cluster, as across the threads of one process: a worker must not start with a patch
  // the other workers refuse (it would refuse it too, in a loop of restarts), nor serve without one they run.
  for (const primary of refused) {
    const name = took.get(primary)!;
    if (!o.json)
      io.err(
        `livepatch: a worker of cluster primary ${primary} refused '${name}': taking it back out of the primary and its workers`,
      );
    const quiet: Io = { out: () => {}, err: () => {}, tty: false };
    await unload(
      { ...o, pid: [primary], name: undefined, all: false, revert: false },
      o.json ? quiet : io,
      name,
    );
  }
  return code;

  async function loadOne(c: ControlClient, t: Target, label: string): Promise<Outcome> {
    if (c.hello.enforcing) {
      if (signature === undefined)
        throw new LivepatchError(
          'EPERM',
          `patch '${file}' is not signed (no '${file}.sig') and process ${t.pid} only loads signed patches; sign it with 'livepatch sign ${file} --key KEY'`,
        );
      const key = (JSON.parse(signature) as { key?: string }).key;
      if (key !== undefined && !c.hello.keys.includes(key))
        throw new LivepatchError(
          'EPERM',
          `patch '${file}' is signed by key '${key}', which process ${t.pid} does not trust`,
          {
            key,
            trusted: c.hello.keys,
          },
        );
    }
    if (!o.json) io.out(`${label}loading patch '${basename(file)}' into pid ${t.pid} (${t.name})`);
    const args = {
      source: bytes.toString('base64'),
      file: basename(file),
      ...(signature !== undefined ? { signature } : {}),
      // How long the process may wait for its worker threads to apply the patch before it answers.
      waitMs: o.timeout * 1000,
    };
    const sent = Date.now();
    const r = (await retryBusy(() => c.request('load', args), o.timeout * 1000, io, o.json, label).catch(
      (e: unknown) => {
        throw withHint(e, t);
      },
    )) as {
      name: string;
      already: boolean;
      sha256: string;
    };
    if (r.already) {
      if (!o.json)
        io.out(`${label}patch '${r.name}' is already loaded with these exact contents; nothing to do`);
      return { code: EXIT.ok, json: { name: r.name, already: true, sha256: r.sha256 } };
    }
    if (!o.json)
      io.out(`${label}waiting (up to ${o.timeout} s) for the patching transition of '${r.name}'...`);
    const done = await finish(
      c,
      t,
      r.name,
      'patched',
      'patching',
      o,
      io,
      label,
      { already: false, sha256: r.sha256, enabled: true },
      Date.now() - sent,
    );
    if (done.code !== EXIT.timeout || !o.revert) return done;
    return revertStalled(c, r.name, o, io, label, done);
  }
}

/**
 * A cluster worker may have made the change already: started after the primary did, it took the primary's patches
 * (src/control/cluster.ts). Then there is nothing to send, only its transition to follow. Undefined when the patch
 * is not there.
 */
async function memberState(c: ControlClient, t: Target, name: string): Promise<TreePatch | null | undefined> {
  if (t.primary === undefined) return undefined;
  const tree = (await c.request('list')) as { patches?: TreePatch[] };
  return tree.patches?.find((x) => x.name === name) ?? null;
}

/**
 * `load --revert-on-stall`: kpatch's answer to a stalled load — reverse the transition, wait, and remove the
 * patch, so the process is back where it was. Still exit 3: the patch did not go in.
 */
async function revertStalled(
  c: ControlClient,
  name: string,
  o: Options,
  io: Io,
  label: string,
  stalled: Outcome,
): Promise<Outcome> {
  if (!o.json) io.err(`${label}reverting: disabling '${name}' and removing it (--revert-on-stall)`);
  await c.request('disable', { name });
  const back = await followTransition(c, name, o.timeout * 1000, io, o.json);
  if (!back.done) {
    if (!o.json)
      io.err(
        `${label}the reverse transition of '${name}' did not finish either; the patch stays loaded, disabling`,
      );
    return { code: EXIT.timeout, json: { ...(stalled.json as object), reverted: false } };
  }
  await c.request('remove', { name });
  if (!o.json) io.err(`${label}patch '${name}' was reverted and removed; the process runs its original code`);
  return { code: EXIT.timeout, json: { ...(stalled.json as object), reverted: true } };
}

export async function enable(o: Options, io: Io, name: string): Promise<number> {
  return eachTarget(
    o,
    io,
    false,
    async (c, t, label) => {
      if ((await memberState(c, t, name))?.enabled === true)
        return finish(c, t, name, 'enabled', 'patching', o, io, label, { enabled: true });
      await retryBusy(
        () => c.request('enable', { name, waitMs: o.timeout * 1000 }),
        o.timeout * 1000,
        io,
        o.json,
        label,
      );
      return finish(c, t, name, 'enabled', 'patching', o, io, label, { enabled: true });
    },
    'change',
  );
}

export async function disable(o: Options, io: Io, name: string): Promise<number> {
  return eachTarget(
    o,
    io,
    false,
    async (c, t, label) => {
      if ((await memberState(c, t, name))?.enabled !== false)
        await retryBusy(() => c.request('disable', { name }), o.timeout * 1000, io, o.json, label);
      return finish(c, t, name, 'disabled', 'unpatching', o, io, label, { enabled: false });
    },
    'change',
  );
}

export async function unload(o: Options, io: Io, name: string): Promise<number> {
  return eachTarget(
    o,
    io,
    false,
    async (c, t, label) => {
      const tree = (await c.request('list')) as { patches?: TreePatch[] };
      const p = tree.patches?.find((x) => x.name === name);
      if (p === undefined && t.primary !== undefined) {
        // Started after the primary removed it, or never had it: the cluster is where the command wants it.
        if (!o.json) io.out(`${label}patch '${name}' is not loaded here; nothing to do`);
        return { code: EXIT.ok, json: { name, removed: true, already: true } };
      }
      if (p === undefined)
        throw new LivepatchError('ENOENT', `patch '${name}' is not loaded in pid ${t.pid}`, { name });
      if (p.enabled) {
        await retryBusy(() => c.request('disable', { name }), o.timeout * 1000, io, o.json, label);
        const r = await finish(c, t, name, 'disabled', 'unpatching', o, io, label, { enabled: false });
        if (r.code !== EXIT.ok) {
          if (!o.json) io.err(`${label}patch '${name}' was not removed: it is still in transition`);
          return r;
        }
      } else if (p.transition) {
        const r = await finish(c, t, name, 'disabled', 'unpatching', o, io, label, { enabled: false });
        if (r.code !== EXIT.ok) return r;
      }
      await c.request('remove', { name });
      if (!o.json) io.out(`${label}unloaded '${name}'`);
      return { code: EXIT.ok, json: { name, removed: true } };
    },
    'change',
  );
}

export async function force(o: Options, io: Io, name: string): Promise<number> {
  return eachTarget(
    o,
    io,
    false,
    async (c, t, label) => {
      const before = (await c.request('transition')) as TransitionView | null;
      if (t.primary !== undefined && before?.patch !== name) {
        // This worker's transition of it is over already (or it never had one): a force would be refused.
        if (!o.json) io.out(`${label}no transition of '${name}' to force here`);
        return { code: EXIT.ok, json: { name, forced: false, tasks: 0 } };
      }
      await c.request('force', { name });
      const n = before?.patch === name ? before.tasks.length : 0;
      if (!o.json)
        io.out(
          `${label}forced the transition of '${name}' in pid ${t.pid} to complete` +
            (n > 0
              ? `: ${n} task${n === 1 ? ' that had not switched was' : 's that had not switched were'} marked switched (it may mix old and new code until it ends)`
              : ''),
        );
      return { code: EXIT.ok, json: { name, forced: true, tasks: n } };
    },
    'change',
  );
}
