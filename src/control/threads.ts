// Patches in worker threads. Each thread has its own runtime (its own modules, slots, tasks), and the process has
// one control socket, served by the main thread. So the main thread keeps the log of the changes it made to its own
// runtime (load, enable, disable, force, remove, sysfs writes), and every worker thread replays that log on its own
// runtime, each change with its own transition: as each CPU of the kernel switches tasks on its own, and the
// transition is over when the last one has. The log reaches a thread two ways:
//   - a file in the process's private directory, read synchronously by a worker as it starts (before the app's code
//     runs in it, like klp_module_coming for a module that loads late). No message to the main thread is waited
//     for: a main thread blocked on its workers (Atomics.wait, as synckit does) must not deadlock them;
//   - a BroadcastChannel named by the pid, for changes made while the worker runs. The worker joins it before it
//     reads the file, and changes carry sequence numbers, so none is missed and none applied twice.
// Workers answer on the same channel with their state; the main thread answers `transition` and `list` from it.
import { lstatSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isLivepatchError, LivepatchError } from '../errors.js';
import { checkPrivateDir, checkTrustedFile, controlDir, privatePatchDir } from './paths.js';
import { hasPatch, type ControlTarget, type TaskView, type TransitionView } from './target.js';

/** One change to a runtime, as the main thread made it. */
export type ThreadOp =
  | {
      op: 'load';
      name: string;
      copy: string;
      file: string;
      sha256: string;
      signedBy: string | null;
      fixes: string[];
    }
  | { op: 'enable' | 'disable' | 'force' | 'remove'; name: string }
  | { op: 'sysfs-write'; name: string; path: string; value: string };

/** Node's global BroadcastChannel (worker_threads' class): no import, so the main thread loads nothing for it. */
type Channel = InstanceType<typeof BroadcastChannel>;

export type LogEntry = ThreadOp & { seq: number; at: number };

/** What the file holds: the changes still relevant to a thread that starts now, and the newest sequence number. */
interface LogFile {
  head: number;
  ops: LogEntry[];
}

/** A worker's report of itself, sent after every change it applied and while it is in transition. */
export interface ThreadReport {
  t: 'state';
  thread: number;
  /** The newest change applied (or failed). */
  applied: number;
  transition: { patch: string; target: string; tasks: string[] } | null;
  /** Changes that failed in this thread, newest last (at most 8). */
  errors: { seq: number; op: string; name: string; message: string }[];
  /** Patches as this thread's runtime has them. */
  patches: { name: string; enabled: boolean }[];
}

/** A module as `symbols` lists it (the runtime's SymbolsView entry); `threads` added where there are workers. */
interface SymbolModule {
  id: string;
  hash: string;
  threads?: number[];
}

type Message =
  | { t: 'op'; entry: LogEntry }
  | ThreadReport
  | { t: 'gone'; thread: number }
  /** A worker started a worker of its own: when the first ends, Node ends the second, and neither can say so. */
  | { t: 'child'; parent: number; thread: number }
  | { t: 'commit'; seq: number }
  | Question
  | { t: 'answer'; req: number; thread: number; value?: unknown; error?: string };

/** What the main thread asks every worker, for a command that reports on the whole process. */
type Question = { t: 'ask'; req: number } & ({ what: 'symbols' } | { what: 'info'; name: string });

/** The patch as a worker has it, for `info` (the runtime's patchInfo, reduced to what differs by thread). */
export interface ThreadPatchInfo {
  thread: number;
  /** False when this thread does not have the patch (a change failed here, or not applied yet). */
  present: boolean;
  enabled?: boolean;
  transition?: boolean;
  objects?: { name: string; loaded: boolean; patched: boolean }[];
}

const ACK_MS =
  Number(process.env['LIVEPATCH_THREAD_ACK_MS']) > 0 ? Number(process.env['LIVEPATCH_THREAD_ACK_MS']) : 5_000;

/** Node's threadId of the main thread. */
const MAIN_THREAD = 0;

/** The labels of the tasks that hold a transition while the threads agree (commands.ts, ThreadAgent.hold). */
export const HOLD_MAIN = 'livepatch: waiting for the worker threads';
export const HOLD_WORKER = 'livepatch: waiting for the main thread';

export function channelName(pid: number): string {
  return `livepatch.threads.${pid}`;
}

/** The log file: in the process's private patch directory, which the main thread empties at start and exit. */
export function logPath(dir: string, pid: number): string {
  return join(privatePatchDir(dir, pid), 'threads.json');
}

function threadIdOf(w: unknown): number {
  const id = (w as { threadId?: unknown }).threadId;
  return typeof id === 'number' ? id : -1;
}

/**
 * Every thread with the loader reports the end of the workers it created: `worker.terminate()` runs no exit
 * handler inside the worker, so the thread that made it is the one that sees it go.
 */
function watchWorkers(onWorker: (id: number) => void, onGone: (id: number) => void): void {
  process.on('worker', (w) => {
    // Node's own threads (the module hooks thread of `module.register`) are InternalWorkers: not the app's.
    if ((w as { constructor?: { name?: string } }).constructor?.name === 'InternalWorker') return;
    const id = threadIdOf(w);
    onWorker(id);
    (w as { once(e: 'exit', fn: () => void): void }).once('exit', () => onGone(id));
  });
}

// --- the main thread ---------------------------------------------------------------------------------------

export interface ThreadView {
  thread: number;
  /** False for a worker that never reported: started without the loader (or still starting), not patchable. */
  loader: boolean;
  applied: number;
  settled: boolean;
  transition: ThreadReport['transition'];
  errors: ThreadReport['errors'];
  patches: ThreadReport['patches'];
}

/** The main thread's side: the log, its file, and what each worker thread last said. */
export class ThreadCoordinator {
  private head = 0;
  private ops: LogEntry[] = [];
  private channel: Channel | undefined;
  private readonly threads = new Map<number, ThreadReport>();
  /** Workers this thread created that have not reported (yet): starting, or started without the loader. */
  private readonly silent = new Map<number, number>();
  /** Threads that have ended (ids are never reused): a report still on its way from one must not revive it. */
  private readonly departed = new Set<number>();
  private readonly waiters = new Set<() => void>();
  /** The newest change: the one a worker's unfinished transition belongs to. */
  private last: LogEntry | undefined;

  constructor(
    private readonly file: string,
    private readonly pid: number,
    private readonly runtime: () => ControlTarget | null,
  ) {
    watchWorkers(
      (id) => {
        this.open();
        this.silent.set(id, Date.now());
      },
      (id) => this.gone(id),
    );
  }

  /** The channel is opened when the first worker starts: a process without workers pays nothing. */
  private open(): Channel {
    if (this.channel !== undefined) return this.channel;
    const ch = new BroadcastChannel(channelName(this.pid));
    ch.unref();
    ch.onmessage = (e: MessageEvent) => this.receive(e.data as Message);
    this.channel = ch;
    return ch;
  }

  private receive(m: Message): void {
    if (m === null || typeof m !== 'object') return;
    if (m.t === 'state' && typeof m.thread === 'number') {
      if (this.departed.has(m.thread)) return;
      const before = this.threads.get(m.thread)?.errors.at(-1)?.seq ?? 0;
      // The main thread's event log (`livepatch log`) tells of what failed in a worker, too.
      for (const e of m.errors)
        if (e.seq > before)
          this.logLine(`livepatch: worker thread ${m.thread}: ${e.op} of '${e.name}' failed: ${e.message}`);
      this.threads.set(m.thread, m);
      this.silent.delete(m.thread);
      for (const w of [...this.waiters]) w();
    } else if (m.t === 'gone') this.gone(m.thread);
    else if (m.t === 'child' && !this.departed.has(m.thread)) {
      if (this.departed.has(m.parent)) this.gone(m.thread);
      else this.parents.set(m.thread, m.parent);
    } else if (m.t === 'answer') this.answers.get(m.req)?.(m.thread, m);
  }

  private readonly answers = new Map<
    number,
    (thread: number, m: { value?: unknown; error?: string }) => void
  >();
  private reqs = 0;

  /**
   * Asks every reporting worker and collects their answers by thread, for at most `ms`: a worker whose event
   * loop is busy is returned in `silent`. A worker's error is its answer's `error`.
   */
  private async ask(
    question: { what: 'symbols' } | { what: 'info'; name: string },
    ms: number,
  ): Promise<{ answers: Map<number, { value?: unknown; error?: string }>; silent: number[] }> {
    const waiting = new Set([...this.threads.keys()]);
    const answers = new Map<number, { value?: unknown; error?: string }>();
    if (waiting.size === 0 || this.channel === undefined) return { answers, silent: [] };
    const req = ++this.reqs;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.answers.set(req, (thread, m) => {
        if (!waiting.delete(thread)) return;
        answers.set(thread, m);
        if (waiting.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      try {
        this.channel!.postMessage({ t: 'ask', req, ...question } satisfies Message);
      } catch {
        resolve();
      }
    });
    this.answers.delete(req);
    return { answers, silent: [...waiting].sort((a, b) => a - b) };
  }

  /**
   * `symbols` for the whole process: the main thread's modules and those the worker threads loaded that it did
   * not (a worker's own files), each with the threads that have it. A worker that does not answer within `ms`
   * (its event loop is busy) is named in `threadsNotAnswering`.
   */
  async symbols(own: { modules: SymbolModule[] }, ms = 1_000): Promise<Record<string, unknown>> {
    if (this.threads.size === 0) return own;
    const { answers, silent } = await this.ask({ what: 'symbols' }, ms);
    const key = (m: SymbolModule) => `${m.id}\0${m.hash}`;
    const byKey = new Map<string, SymbolModule>();
    for (const m of own.modules) byKey.set(key(m), { ...m, threads: [MAIN_THREAD] });
    for (const [thread, a] of [...answers].sort(([x], [y]) => x - y)) {
      for (const m of Array.isArray(a.value) ? (a.value as SymbolModule[]) : []) {
        const have = byKey.get(key(m));
        if (have !== undefined) have.threads!.push(thread);
        else byKey.set(key(m), { ...m, threads: [thread] });
      }
    }
    return {
      ...own,
      modules: [...byKey.values()],
      ...(silent.length > 0 ? { threadsNotAnswering: silent } : {}),
    };
  }

  /**
   * `info` for the whole process: the main thread's view of the patch and, per worker, whether it has the patch,
   * enabled or not, and which of its objects are loaded and patched there. A worker's own module is patched in
   * that worker only, and the main thread alone would call it "not loaded yet".
   */
  async info(own: Record<string, unknown>, name: string, ms = 1_000): Promise<Record<string, unknown>> {
    if (this.threads.size === 0) return own;
    const { answers, silent } = await this.ask({ what: 'info', name }, ms);
    const threads: ThreadPatchInfo[] = [...answers]
      .sort(([x], [y]) => x - y)
      .map(([thread, a]) => {
        const v = a.value as ThreadPatchInfo | undefined;
        if (a.error !== undefined || v === undefined) return { thread, present: false };
        return { ...v, thread };
      });
    return { ...own, threads, ...(silent.length > 0 ? { threadsNotAnswering: silent } : {}) };
  }

  private logLine(line: string): void {
    try {
      (this.runtime()?.log as { write?(l: string): void } | undefined)?.write?.(line);
    } catch {}
  }

  /** The creator of each worker that a worker created (threads the main thread created are not here). */
  private readonly parents = new Map<number, number>();

  private gone(id: number): void {
    if (this.departed.has(id)) return;
    this.departed.add(id);
    this.parents.delete(id);
    // A worker's own workers end with it (Node terminates them), and their end reaches nobody else.
    for (const [child, parent] of [...this.parents]) if (parent === id) this.gone(child);
    // A service that starts a worker per job must not grow this forever; a late report comes within moments.
    if (this.departed.size > 4096) this.departed.delete(this.departed.values().next().value!);
    this.silent.delete(id);
    if (this.threads.delete(id)) for (const w of [...this.waiters]) w();
  }

  /**
   * Appends a change the main thread just made, writes the file new workers read, and sends the change to the
   * running ones. Returns its sequence number. Never throws: a change that cannot reach the workers shows as
   * their `applied` falling behind.
   */
  record(op: ThreadOp): number {
    const entry = { ...op, seq: ++this.head, at: Date.now() } as LogEntry;
    this.last = entry;
    this.ops.push(entry);
    // A thread that starts now needs only the changes of the patches the main thread still has.
    let names: Set<string> | undefined;
    try {
      const tree = this.runtime()?.tree() as { patches: { name: string }[] } | undefined;
      names = new Set(tree?.patches.map((p) => p.name) ?? []);
    } catch {}
    if (names !== undefined) this.ops = this.ops.filter((o) => names.has(o.name) && o.op !== 'force');
    const body: LogFile = { head: this.head, ops: this.ops };
    try {
      writeFileSync(`${this.file}.tmp`, JSON.stringify(body), { mode: 0o600 });
      renameSync(`${this.file}.tmp`, this.file);
    } catch {}
    if (this.channel !== undefined) {
      try {
        this.channel.postMessage({ t: 'op', entry } satisfies Message);
      } catch {}
    }
    return entry.seq;
  }

  /** True when a worker thread with the loader has reported: there is someone to wait for. */
  hasWorkers(): boolean {
    return this.threads.size > 0;
  }

  /**
   * Lets the workers' transitions for change `seq` complete: the main thread has decided (every worker applied
   * it, or the change was reversed after a refusal). Until then each worker holds its transition open.
   */
  commit(seq: number): void {
    try {
      this.channel?.postMessage({ t: 'commit', seq } satisfies Message);
    } catch {}
  }

  /** Live worker threads that report to this process (those started with the loader). */
  views(): ThreadView[] {
    // In step: every change applied, no transition running, and the same patches, enabled the same, as here.
    let mine = '';
    try {
      const tree = this.runtime()?.tree() as { patches: { name: string; enabled: boolean }[] } | undefined;
      mine = JSON.stringify(tree?.patches.map((p) => [p.name, p.enabled]) ?? []);
    } catch {}
    return [...this.threads.values()]
      .sort((a, b) => a.thread - b.thread)
      .map((r) => {
        const settled =
          r.applied >= this.head &&
          r.transition === null &&
          JSON.stringify(r.patches.map((p) => [p.name, p.enabled])) === mine;
        return {
          thread: r.thread,
          loader: true,
          applied: r.applied,
          settled,
          transition: r.transition,
          // A failure counts while the thread is out of step because of it; one undone everywhere was reported
          // by its command.
          errors: settled ? [] : r.errors,
          patches: r.patches,
        };
      })
      .concat(
        // Patches cannot reach such a worker; it is listed so that nobody believes they do. After a second:
        // a worker with the loader reports as soon as it has started.
        [...this.silent]
          .filter(([, since]) => Date.now() - since > 1000)
          .map(([thread]) => ({
            thread,
            loader: false,
            applied: 0,
            settled: true,
            transition: null,
            errors: [],
            patches: [],
          })),
      )
      .sort((a, b) => a.thread - b.thread);
  }

  /**
   * Waits until every live worker thread has applied change `seq` (or failed it, or gone), at most `ms`.
   * Returns the threads where it failed, with the message.
   */
  async applied(seq: number, within?: number): Promise<{ thread: number; message: string }[]> {
    const ms = Math.min(within ?? ACK_MS, ACK_MS);
    const behind = () => [...this.threads.values()].some((r) => r.applied < seq);
    if (behind()) {
      await new Promise<void>((resolve) => {
        const check = () => {
          if (behind()) return;
          done();
        };
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(done, ms);
        timer.unref();
        this.waiters.add(check);
      });
    }
    const failed: { thread: number; message: string }[] = [];
    for (const r of this.threads.values()) {
      const e = r.errors.find((x) => x.seq === seq);
      if (e !== undefined) failed.push({ thread: r.thread, message: e.message });
    }
    return failed;
  }

  /**
   * The transition as the CLI follows it: the main thread's own, with each worker thread that has not settled
   * yet as one more task; when the main thread is done but a worker is not, the newest change's transition.
   */
  transition(own: TransitionView | null): TransitionView | null {
    const now = Date.now();
    const last = this.last;
    const tasks: TaskView[] = [];
    for (const v of this.views()) {
      if (v.settled || !v.loader) continue;
      const failed = v.errors.at(-1);
      const age = last ? now - last.at : 0;
      const label =
        v.applied < this.head
          ? `thread ${v.thread}: has not applied the change yet` +
            (age > 1000 ? ' (its event loop is busy?)' : '')
          : v.transition !== null
            ? v.transition.tasks.length === 0
              ? `thread ${v.thread}: completing its transition`
              : `thread ${v.thread}: ${v.transition.tasks.length} task(s) of the old universe: ${v.transition.tasks.join(', ')}`
            : failed !== undefined
              ? `thread ${v.thread}: ${failed.op} of '${failed.name}' failed there: ${failed.message}`
              : `thread ${v.thread}: its patches differ from the main thread's`;
      tasks.push({ id: `thread-${v.thread}`, kind: 'worker', label, ageMs: age });
    }
    if (own !== null) {
      const mine = own.tasks.filter((x) => x.label !== HOLD_MAIN);
      return { ...own, tasks: [...mine, ...tasks] };
    }
    if (tasks.length === 0 || last === undefined) return null;
    const target = last.op === 'disable' || last.op === 'remove' ? 'unpatched' : 'patched';
    return { patch: last.name, target, startedAt: last.at, tasks };
  }
}

// --- a worker thread ---------------------------------------------------------------------------------------

/** The parts of the runtime a worker thread drives. */
interface WorkerRuntime extends ControlTarget {
  log: ControlTarget['log'] & { write?(line: string): void };
}

/** A worker's answer to the main thread's question: its modules, or its view of one patch. */
async function answerOf(runtime: WorkerRuntime, thread: number, q: Question): Promise<unknown> {
  if (q.what === 'symbols') return ((await runtime.symbols()) as { modules: SymbolModule[] }).modules;
  if (!hasPatch(runtime, q.name)) return { thread, present: false } satisfies ThreadPatchInfo;
  const p = (await runtime.patchInfo(q.name)) as {
    enabled: boolean;
    transition: boolean;
    objects: { name: string; loaded: boolean; patched: boolean }[];
  };
  return {
    thread,
    present: true,
    enabled: p.enabled,
    transition: p.transition,
    objects: p.objects.map((o) => ({ name: o.name, loaded: o.loaded, patched: o.patched })),
  } satisfies ThreadPatchInfo;
}

/**
 * Joins the process's change log in a worker thread: replays the file (patches loaded before this thread
 * started are in place before the app's code runs here), then follows the channel. Never throws.
 */
export async function startThreadAgent(
  runtime: WorkerRuntime,
  threadId: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const pid = process.pid;
  const dir = controlDir(env);
  const agent = new ThreadAgent(runtime, threadId, privatePatchDir(dir, pid));
  let ch: Channel;
  try {
    ch = new BroadcastChannel(channelName(pid));
    ch.unref();
  } catch {
    return;
  }
  agent.channel = ch;
  ch.onmessage = (e: MessageEvent) => {
    const m = e.data as Message;
    if (m === null || typeof m !== 'object') return;
    if (m.t === 'op') agent.enqueue(m.entry);
    else if (m.t === 'commit') agent.commit(m.seq);
    else if (m.t === 'ask') void answer(m);
  };
  const answer = async (q: Question): Promise<void> => {
    let reply: Message;
    try {
      reply = { t: 'answer', req: q.req, thread: threadId, value: await answerOf(runtime, threadId, q) };
    } catch (e) {
      reply = {
        t: 'answer',
        req: q.req,
        thread: threadId,
        error: e instanceof Error ? e.message : String(e),
      };
    }
    try {
      ch.postMessage(reply);
    } catch {}
  };
  const gone = (id: number) => {
    try {
      ch.postMessage({ t: 'gone', thread: id } satisfies Message);
    } catch {}
  };
  watchWorkers((id) => {
    try {
      ch.postMessage({ t: 'child', parent: threadId, thread: id } satisfies Message);
    } catch {}
  }, gone);
  // A worker that ends by itself says so; one terminated from outside is reported by the thread that made it.
  process.once('exit', () => gone(threadId));
  let log: LogFile | undefined;
  try {
    const text = readFileSync(logPath(dir, pid), 'utf8');
    // Only the process's own private directory is trusted to say what code to run.
    checkPrivateDir(dir, lstatSync(dir));
    checkPrivateDir(privatePatchDir(dir, pid), lstatSync(privatePatchDir(dir, pid)));
    log = JSON.parse(text) as LogFile;
  } catch {}
  if (log !== undefined) {
    for (const entry of log.ops) agent.enqueue(entry, true);
    agent.catchUpTo(log.head);
  }
  await agent.idle();
  agent.report();
}

class ThreadAgent {
  channel: Channel | undefined;
  private applied = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly errors: ThreadReport['errors'] = [];
  private watching: NodeJS.Timeout | undefined;
  private lastReport = '';
  private awaiting = false;
  /** A patch imported once, kept while its load waits for this thread's transition. */
  private readonly specs = new Map<number, unknown>();
  /** Changes the main thread has decided on, and the transitions held until it does (by sequence number). */
  private readonly committed = new Set<number>();
  private readonly holds = new Map<number, () => void>();

  commit(seq: number): void {
    this.committed.add(seq);
    if (this.committed.size > 64) this.committed.delete(this.committed.values().next().value!);
    this.holds.get(seq)?.();
  }

  /**
   * For a change that runs a patch's code (load, enable) while the main thread may still reverse it: a task of
   * the old universe until the main thread commits, so this thread's transition cannot complete before (an
   * atomic-replace patch would drop the patches it replaces). A minute at most, whatever happens.
   */
  private hold(entry: LogEntry): () => void {
    if ((entry.op !== 'load' && entry.op !== 'enable') || this.committed.has(entry.seq)) return () => {};
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const timer = setTimeout(release, 60_000);
    timer.unref();
    const done = () => {
      clearTimeout(timer);
      this.holds.delete(entry.seq);
      release();
    };
    this.holds.set(entry.seq, done);
    try {
      this.runtime.runTask?.(() => held, HOLD_WORKER);
    } catch {}
    return done;
  }

  constructor(
    private readonly runtime: WorkerRuntime,
    private readonly thread: number,
    private readonly patchDir: string,
  ) {}

  /** Changes up to `head` that are not in the file concern patches already gone: nothing to do for them. */
  catchUpTo(head: number): void {
    this.queue = this.queue.then(() => {
      if (head > this.applied) this.applied = head;
    });
  }

  idle(): Promise<void> {
    return this.queue;
  }

  enqueue(entry: LogEntry, catchingUp = false): void {
    // force completes a transition that may be what the queue waits on: it does not wait its turn.
    if (entry.op === 'force') {
      this.attempt(entry).catch(() => {});
      this.queue = this.queue.then(() => {
        if (entry.seq > this.applied) this.applied = entry.seq;
        this.report();
      });
      return;
    }
    this.queue = this.queue.then(async () => {
      if (entry.seq <= this.applied) return;
      const release = catchingUp ? () => {} : this.hold(entry);
      try {
        await this.apply(entry);
      } catch (e) {
        release();
        // A change of a patch this thread does not have (it failed to load here, or the thread started after a
        // force or a disable) is moot.
        const moot = entry.op !== 'load' && (catchingUp || (isLivepatchError(e) && e.code === 'ENOENT'));
        if (!moot) {
          this.errors.push({ seq: entry.seq, op: entry.op, name: entry.name, message: messageOf(e) });
          if (this.errors.length > 8) this.errors.shift();
          this.runtime.log.write?.(
            `livepatch: worker thread ${this.thread}: ${entry.op} of '${entry.name}' failed: ${messageOf(e)}`,
          );
        }
      }
      this.specs.delete(entry.seq);
      this.applied = entry.seq;
      if (!catchingUp) this.report();
    });
  }

  /** Applies one change, waiting out this thread's own transition when the runtime says it is busy. */
  private async apply(entry: LogEntry): Promise<void> {
    for (;;) {
      try {
        await this.attempt(entry);
        return;
      } catch (e) {
        if (!(isLivepatchError(e) && e.code === 'EBUSY') || this.runtime.transition() === null) throw e;
      }
      this.report();
      await this.runtime.waitForTransition(250);
    }
  }

  private async attempt(entry: LogEntry): Promise<void> {
    const r = this.runtime;
    switch (entry.op) {
      case 'load': {
        // Loaded already (a change the file and the channel both carried): nothing to do.
        if (hasPatch(r, entry.name)) return;
        let spec = this.specs.get(entry.seq);
        if (spec === undefined) {
          // Only a copy the main thread made in the process's private directory: what it checked (signature
          // included, in enforcing mode) is what runs here. Anything else on the channel is refused.
          if (dirname(entry.copy) !== this.patchDir)
            throw new LivepatchError('EPERM', `'${entry.copy}' is not in this process's patch directory`);
          checkTrustedFile(entry.copy, lstatSync(entry.copy));
          const { importCopy } = await import('./patches.js');
          spec = await importCopy(entry.copy, entry.file);
          this.specs.set(entry.seq, spec);
        }
        await r.loadPatch(spec, {
          source: entry.sha256,
          file: entry.file,
          ...(entry.signedBy !== null ? { signedBy: entry.signedBy } : {}),
          fixes: entry.fixes,
        });
        return;
      }
      case 'enable':
        return void (await r.enablePatch(entry.name));
      case 'disable':
        return void (await r.disablePatch(entry.name));
      case 'force':
        return void (await r.forcePatch(entry.name));
      case 'remove':
        return void (await r.removePatch(entry.name));
      case 'sysfs-write':
        return void (await r.sysfsWrite(entry.path, entry.value));
    }
  }

  /** Sends this thread's state to the main thread, and keeps sending it while a transition runs here. */
  report(): void {
    let transition: ThreadReport['transition'] = null;
    let patches: ThreadReport['patches'] = [];
    try {
      const t = this.runtime.transition();
      // The hold is livepatch's own, and released within moments: not a task of the app's to report.
      if (t !== null)
        transition = {
          patch: t.patch,
          target: t.target,
          tasks: t.tasks.filter((x) => x.label !== HOLD_WORKER).map((x) => x.label),
        };
      const tree = this.runtime.tree() as { patches: { name: string; enabled: boolean }[] };
      patches = tree.patches.map((p) => ({ name: p.name, enabled: p.enabled }));
    } catch {}
    const m: ThreadReport = {
      t: 'state',
      thread: this.thread,
      applied: this.applied,
      transition,
      errors: this.errors,
      patches,
    };
    const text = JSON.stringify(m);
    if (text !== this.lastReport) {
      this.lastReport = text;
      try {
        this.channel?.postMessage(m);
      } catch {}
    }
    if (transition !== null && !this.awaiting) {
      // Said as soon as the transition completes; the interval below only follows its list of tasks.
      this.awaiting = true;
      void this.runtime.waitForTransition(3_600_000).then(() => {
        this.awaiting = false;
        this.report();
      });
    }
    if (transition !== null && this.watching === undefined) {
      this.watching = setInterval(() => this.report(), 250);
      this.watching.unref();
    } else if (transition === null && this.watching !== undefined) {
      clearInterval(this.watching);
      this.watching = undefined;
    }
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
