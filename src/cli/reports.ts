// The reporting commands: ps, list, symbols, info, status, log — what is patched, where, since when.
import { ControlClient } from '../control/client.js';
import type { PatchOrigin, ProcessMeta } from '../control/protocol.js';
import { UsageError, type Options } from './args.js';
import { discover } from './discover.js';
import {
  patchState,
  renderThreads,
  renderTree,
  renderValue,
  since,
  table,
  type TreePatch,
  type TreeThread,
} from './format.js';
import { listInstalled } from './install.js';
import { eachTarget, EXIT, type Io } from './session.js';

interface LogLine {
  seq?: number;
  time?: number;
  line?: string;
}

function logText(l: unknown): string {
  if (typeof l === 'string') return l;
  const v = l as LogLine;
  const time = typeof v.time === 'number' ? new Date(v.time).toISOString().slice(11, 23) : '';
  return `${time ? `[${time}] ` : ''}${v.line ?? JSON.stringify(l)}`;
}

export async function ps(o: Options, io: Io): Promise<number> {
  const procs = discover();
  const rows: { meta: ProcessMeta; patches: string[] | null }[] = [];
  for (const meta of procs) {
    let patches: string[] | null = null;
    try {
      const c = await ControlClient.connect(meta.socket, 2000);
      try {
        const tree = (await c.request('list')) as { patches?: TreePatch[] };
        patches = (tree.patches ?? []).map((p) => p.name);
      } finally {
        c.close();
      }
    } catch {
      // Alive but not answering (busy, or the runtime is not active): still listed, patches unknown.
    }
    rows.push({ meta, patches });
  }
  if (o.json) {
    io.out(
      JSON.stringify({
        processes: rows.map(({ meta, patches }) => ({
          pid: meta.pid,
          name: meta.name,
          node: meta.node,
          patches: patches ?? [],
          answering: patches !== null,
          startedAt: meta.startedAt,
          livepatch: meta.livepatch,
          argv: meta.argv,
          ...(meta.clusterPrimary !== undefined ? { clusterPrimary: meta.clusterPrimary } : {}),
        })),
      }),
    );
    return EXIT.ok;
  }
  if (rows.length === 0) {
    io.out("no livepatch processes (start one with 'livepatch run -- node app.js')");
    return EXIT.ok;
  }
  // Each cluster's workers right after their primary.
  const group = (m: ProcessMeta) =>
    m.clusterPrimary !== undefined && rows.some((r) => r.meta.pid === m.clusterPrimary)
      ? m.clusterPrimary
      : m.pid;
  rows.sort(
    (a, b) =>
      group(a.meta) - group(b.meta) ||
      (group(a.meta) === a.meta.pid ? -1 : 0) - (group(b.meta) === b.meta.pid ? -1 : 0) ||
      a.meta.pid - b.meta.pid,
  );
  io.out(
    table([
      ['PID', 'NAME', 'NODE', 'UPTIME', 'PATCHES'],
      ...rows.map(({ meta, patches }) => [
        String(meta.pid),
        // A cluster worker under its primary, as `ps -H` shows children.
        meta.clusterPrimary !== undefined && rows.some((r) => r.meta.pid === meta.clusterPrimary)
          ? `  ${meta.name} (worker of ${meta.clusterPrimary})`
          : meta.name,
        meta.node,
        since(meta.startedAt),
        patches === null ? '(not answering)' : patches.length === 0 ? '-' : patches.join(','),
      ]),
    ]),
  );
  return EXIT.ok;
}

export async function list(o: Options, io: Io): Promise<number> {
  const code = await eachTarget(
    o,
    io,
    true,
    async (c, t, label) => {
      const tree = (await c.request('list')) as { patches?: TreePatch[]; threads?: TreeThread[] };
      if (!o.json) {
        io.out(
          `${label.trimEnd() || `pid ${t.pid} (${t.name}):`}\n${indent(renderTree(tree.patches ?? []))}`,
        );
        if (tree.threads !== undefined && tree.threads.length > 0)
          io.out(indent(renderThreads(tree.threads)));
      }
      return { code: EXIT.ok, json: tree };
    },
    'view',
  );
  if (!o.json) {
    const installed = listInstalled();
    if (installed.files.length > 0)
      io.out(`\nInstalled patches (${installed.dir}):\n${installed.files.map((f) => `  ${f}`).join('\n')}`);
  }
  return code;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

interface SymbolModule {
  id: string;
  hash?: string;
  status?: string;
  reason?: string;
  funcs?: { name: string; sympos?: number; kind?: string }[];
  unpatchable?: { name: string; reason: string }[];
  /** Where there are worker threads: the threads that loaded it (0 is the main thread). */
  threads?: number[];
}

export async function symbols(o: Options, io: Io, filter: string | undefined): Promise<number> {
  return eachTarget(o, io, true, async (c, t, label) => {
    const s = (await c.request('symbols')) as { modules?: SymbolModule[] } & Record<string, unknown>;
    const modules = (s.modules ?? []).filter((m) => filter === undefined || m.id.includes(filter));
    if (!o.json) {
      const lines: string[] = [
        `${label || `pid ${t.pid} (${t.name}): `}${modules.length} module${modules.length === 1 ? '' : 's'}`,
      ];
      for (const m of modules) {
        const elsewhere = m.threads !== undefined && !m.threads.includes(0);
        lines.push(
          `${m.id}  sha256:${m.hash ?? '?'}` +
            (elsewhere
              ? `  (worker thread${m.threads!.length === 1 ? '' : 's'} ${m.threads!.join(', ')} only)`
              : ''),
        );
        if (m.status !== undefined && m.status !== 'instrumented')
          lines.push(`  [module not patchable: ${m.status}${m.reason ? `: ${m.reason}` : ''}]`);
        const rows = (m.funcs ?? []).map((f) => [
          `  ${f.name}`,
          String(f.sympos && f.sympos > 0 ? f.sympos : 1),
          f.kind ?? '',
        ]);
        if (rows.length > 0) lines.push(table(rows));
        for (const u of m.unpatchable ?? []) lines.push(`  ${u.name}  [not patchable: ${u.reason}]`);
      }
      for (const [k, v] of Object.entries(s))
        if (k !== 'modules' && Array.isArray(v) && v.length > 0) lines.push(`${k}:`, renderValue(v, '  '));
      io.out(lines.join('\n'));
    }
    return { code: EXIT.ok, json: { ...s, modules } };
  });
}

interface PatchInfoView {
  name: string;
  enabled: boolean;
  transition: boolean;
  replace?: boolean;
  forced?: boolean;
  stack_order?: number;
  loadedAt?: number;
  states?: { id: number; version: number }[];
  objects?: {
    name: string;
    hash: string | null;
    loaded?: boolean;
    patched?: boolean;
    instances?: { file: string; hash: string }[];
    callbacks?: string[];
    funcs?: { name: string; sympos?: number; form?: string }[];
  }[];
  origin: (PatchOrigin & { fixes?: string[] }) | null;
  /** Only when the process has worker threads (threads.ts): the patch as each of them has it. */
  threads?: {
    thread: number;
    present: boolean;
    enabled?: boolean;
    transition?: boolean;
    objects?: { name: string; loaded: boolean; patched: boolean }[];
  }[];
  threadsNotAnswering?: number[];
}

/** `1, 2 and 5` */
function threadList(ids: number[]): string {
  return ids.length < 2 ? ids.join('') : `${ids.slice(0, -1).join(', ')} and ${ids.at(-1)}`;
}

/** Groups thread ids by a description of each: `enabled in threads 1 and 2; disabled in thread 3`. */
function byThread(entries: [number, string][]): string {
  const groups = new Map<string, number[]>();
  for (const [id, what] of entries) groups.set(what, [...(groups.get(what) ?? []), id]);
  return [...groups]
    .map(([what, ids]) => `${what} in thread${ids.length > 1 ? 's' : ''} ${threadList(ids)}`)
    .join('; ');
}

/** `kpatch info`, with what kpatch cannot say: where the patch came from, who signed it, what it fixes. */
export function renderInfo(i: PatchInfoView, pid: number): string {
  const o = i.origin;
  const lines = [
    `Patch information for '${i.name}' (pid ${pid}):`,
    `  state: ${patchState(i)}${i.stack_order !== undefined ? `, stack_order ${i.stack_order}` : ''}, replace: ${i.replace ? 'yes' : 'no'}${i.forced ? ', forced' : ''}`,
  ];
  if (i.loadedAt !== undefined)
    lines.push(`  loaded: ${new Date(i.loadedAt).toISOString()} (${since(i.loadedAt)} ago)`);
  if (o !== null)
    lines.push(
      `  source: ${o.file} sha256:${o.sha256} (${o.from === 'install' ? 'installed patch' : o.from === 'primary' ? "taken from the cluster primary's patches at start" : 'sent over the control socket'})`,
      `  signed by: ${o.signedBy ?? 'not verified (process not in enforcing mode)'}`,
      ...(o.fixes && o.fixes.length > 0 ? [`  fixes: ${o.fixes.join(', ')}`] : []),
    );
  lines.push(`  states: ${(i.states ?? []).map((s) => `${s.id}@${s.version}`).join(', ') || 'none'}`);
  const threads = i.threads ?? [];
  if (threads.length > 0 || (i.threadsNotAnswering ?? []).length > 0) {
    const states = threads.map((t): [number, string] => [
      t.thread,
      t.present
        ? patchState({ enabled: t.enabled ?? false, transition: t.transition ?? false })
        : 'not applied',
    ]);
    for (const id of i.threadsNotAnswering ?? [])
      states.push([id, 'not answering (its event loop is busy?)']);
    lines.push(`  worker threads: ${byThread(states)}`);
  }
  const where = (o: { loaded?: boolean; patched?: boolean }) =>
    o.loaded === false ? 'not loaded yet' : o.patched ? 'patched' : 'loaded, not patched';
  for (const ob of i.objects ?? []) {
    const inWorkers = threads.flatMap((t): [number, string][] => {
      const there = t.objects?.find((x) => x.name === ob.name);
      return there === undefined ? [] : [[t.thread, where(there)]];
    });
    // The main thread's word alone, where there are workers: a worker-only module is "not loaded yet" here.
    const main = inWorkers.length > 0 ? `main thread: ${where(ob)}; ${byThread(inWorkers)}` : where(ob);
    lines.push(`  object ${ob.name} (${main}), target hash: ${ob.hash ?? 'any (not pinned)'}`);
    for (const inst of ob.instances ?? []) lines.push(`    instance ${inst.file} sha256:${inst.hash}`);
    if (ob.callbacks && ob.callbacks.length > 0) lines.push(`    callbacks: ${ob.callbacks.join(', ')}`);
    for (const f of ob.funcs ?? [])
      lines.push(`    ${f.name},${f.sympos && f.sympos > 0 ? f.sympos : 1}${f.form ? `  ${f.form}` : ''}`);
  }
  return lines.join('\n');
}

export async function info(o: Options, io: Io, name: string): Promise<number> {
  return eachTarget(
    o,
    io,
    true,
    async (c, t, label) => {
      const i = (await c.request('info', { name })) as PatchInfoView;
      if (!o.json) io.out(label + renderInfo(i, t.pid));
      return { code: EXIT.ok, json: i };
    },
    'view',
  );
}

export async function status(o: Options, io: Io): Promise<number> {
  if (o.pid.length === 0 && o.name === undefined) o = { ...o, all: true };
  if (discover().length === 0 && !o.json) {
    io.out('no livepatch processes are running');
    return EXIT.ok;
  }
  return eachTarget(
    o,
    io,
    true,
    async (c) => {
      const s = (await c.request('status')) as {
        meta: ProcessMeta;
        tree: { patches?: TreePatch[]; threads?: TreeThread[] };
        transition: { patch: string; tasks?: unknown[] } | null;
        origins: (PatchOrigin & { fixes?: string[]; description?: string })[];
        enforcing: boolean;
      };
      if (!o.json) {
        const m = s.meta;
        const lines = [
          `pid ${m.pid} (${m.name}${m.clusterPrimary !== undefined ? `, cluster worker of ${m.clusterPrimary}` : ''}) — node ${m.node}, up ${since(m.startedAt)}, livepatch ${m.livepatch}${s.enforcing ? ', enforcing: signed patches only' : ''}`,
        ];
        const patches = s.tree.patches ?? [];
        if (patches.length === 0) lines.push('  not patched');
        for (const p of patches) {
          const origin = s.origins.find((x) => x.name === p.name);
          const funcs = (p.objects ?? []).reduce((n, ob) => n + (ob.funcs?.length ?? 0), 0);
          lines.push(
            `  ${p.name} [${patchState(p)}] ${funcs} function${funcs === 1 ? '' : 's'}` +
              (origin
                ? `, since ${origin.loadedAt} (${since(origin.loadedAt)} ago), from ${origin.file} sha256:${origin.sha256.slice(0, 12)}`
                : '') +
              (origin?.signedBy ? `, signed by ${origin.signedBy}` : ''),
          );
          if (origin?.fixes?.length) lines.push(`    fixes: ${origin.fixes.join(', ')}`);
          if (origin?.description) lines.push(`    ${origin.description}`);
        }
        if (s.transition)
          lines.push(
            `  transition of '${s.transition.patch}' in progress: ${s.transition.tasks?.length ?? 0} tasks in the old universe`,
          );
        const threads = s.tree.threads ?? [];
        if (threads.length > 0) {
          const off = threads.filter((x) => x.loader !== false && !x.settled).length;
          const bare = threads.filter((x) => x.loader === false).length;
          const n = threads.length - bare;
          lines.push(
            `  worker threads: ${n} under the loader${n > 0 ? (off === 0 ? ', all in step' : `, ${off} not in step (see 'list')`) : ''}` +
              (bare > 0 ? `; ${bare} not reporting (not patched: see 'list')` : ''),
          );
        }
        io.out(lines.join('\n'));
      }
      return { code: EXIT.ok, json: s };
    },
    'view',
  );
}

export async function log(o: Options, io: Io): Promise<number> {
  if (!o.follow) {
    return eachTarget(o, io, true, async (c, _t, label) => {
      const lines = (await c.request('log', o.since !== undefined ? { since: o.since } : {})) as unknown[];
      if (!o.json) for (const l of lines) io.out(`${label}${logText(l)}`);
      return { code: EXIT.ok, json: { lines } };
    });
  }
  // -f: print what is there, then every new line until interrupted or the process exits.
  if (o.all || o.pid.length > 1)
    throw new UsageError("'log -f' follows one process: choose it with --pid or --name");
  return eachTarget({ ...o, json: false }, io, true, async (c, _t, label) => {
    let last = o.since ?? 0;
    const print = (l: unknown) => {
      const seq = (l as LogLine).seq;
      if (typeof seq === 'number') {
        if (seq <= last) return;
        last = seq;
      }
      io.out(o.json ? JSON.stringify(l) : `${label}${logText(l)}`);
    };
    const buffered: unknown[] = [];
    let live = false;
    await c.request('follow', {}, (l) => (live ? print(l) : buffered.push(l)));
    for (const l of (await c.request('log', { since: last })) as unknown[]) print(l);
    live = true;
    for (const l of buffered.splice(0)) print(l);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      void c.closed.then(() => resolve());
    });
    return { code: EXIT.ok, json: null };
  });
}

/** The sysfs files themselves: `sysfs fix-1/enabled` reads like `cat`, `sysfs fix-1/enabled 0` writes like `echo`. */
export async function sysfs(o: Options, io: Io, path: string, value: string | undefined): Promise<number> {
  const rel = path.replace(/^\/sys\/kernel\/livepatch\/?/, '');
  return eachTarget(
    o,
    io,
    value === undefined,
    async (c, _t, label) => {
      if (value === undefined) {
        const text = String(await c.request('sysfs-read', { path: rel }));
        if (!o.json) io.out(`${label}${text.replace(/\n$/, '')}`);
        return { code: EXIT.ok, json: { path: rel, value: text } };
      }
      await c.request('sysfs-write', { path: rel, value });
      return { code: EXIT.ok, json: { path: rel, written: value } };
    },
    value === undefined ? 'one' : 'change',
  );
}
