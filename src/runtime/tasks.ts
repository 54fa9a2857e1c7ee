// Tasks and universes: which unit of work runs in which universe while a transition lasts (livepatch's
// per-task patch_state). HTTP requests become tasks with no app change; other work through task(fn).
import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The kernel's KLP_TRANSITION_UNPATCHED / KLP_TRANSITION_PATCHED. */
export type Universe = 0 | 1;
export const UNPATCHED: Universe = 0;
export const PATCHED: Universe = 1;

export class Task {
  /** The universe this task runs in, fixed for its life (meaningful only while `gen` is current). */
  state: Universe;
  /** The transition it was tagged in; 0 when never tagged; -1 when tagged in the always-tag mode. */
  gen = 0;
  /** Patched functions it entered during the current transition. */
  entered: Set<string> | undefined = undefined;

  constructor(
    readonly id: number,
    readonly kind: 'http' | 'task',
    // Kept as given and joined only when reported: building "GET /x" for every request would cost for nothing.
    private readonly what: string,
    private readonly where: string | undefined,
    state: Universe,
    readonly startedAt = Date.now(),
  ) {
    this.state = state;
  }

  get label(): string {
    return this.where === undefined ? this.what : `${this.what} ${this.where}`;
  }
}

const kTask = Symbol('livepatch.task');
// Start times of untracked requests are kept as ms since this moment: a small integer (a Smi, no allocation)
// for the first ~12 days of the process, where Date.now() itself would be a heap number.
const epoch = Date.now();

/**
 * Whether AsyncLocalStorage runs on AsyncContextFrame (Node 24 by default, 22 with a flag): then it has no
 * promise hooks, so tagging every task all the time costs about nothing (js-runtime.md §6, nodejs/node#46265).
 */
export function hasAsyncContextFrame(): boolean {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (flags.includes('--no-async-context-frame')) return false;
  return (
    Number(process.versions.node.split('.')[0]) >= 24 || flags.includes('--experimental-async-context-frame')
  );
}

/**
 * The table of running tasks, in one of two modes.
 *
 * `alwaysTag` (AsyncContextFrame): every task is tagged when it starts, so the runtime always knows which
 * task is running; code outside any task switches at once, and a task started inside an old task is old too.
 *
 * Otherwise (promise hooks: Node 20, 22): outside a transition only the set of running tasks is kept (so
 * that the next transition knows which tasks are old) and no AsyncLocalStorage runs, so there is no
 * promise-hook tax. During a transition, tasks started since it began are tagged; a context without a
 * current tag is treated as an old task (`base`), because a task that started before the transition cannot
 * be told apart from code outside any task without tagging every task all the time.
 */
export class TaskTable {
  readonly active = new Set<Task>();
  /** Current transition generation; 0 when no transition runs. */
  gen = 0;
  target: Universe = PATCHED;
  /** The universe of untagged contexts during the transition: the one the transition started from. */
  base: Universe = UNPATCHED;
  /** Functions entered by untagged contexts during the transition (old tasks share this record). */
  readonly untaggedEntered = new Set<string>();
  /** Called when a task that is not in the target universe ends: the transition may be complete now. */
  onOldTaskEnd: () => void = () => {};
  private readonly als = new AsyncLocalStorage<Task>();
  /**
   * HTTP requests started outside a transition (promise-hook mode only): response → start time (ms after
   * `epoch`), removed by the 'http.server.response.finish' channel. They become Tasks only if a transition begins
   * while they run (adoptRequests). So an idle request allocates no Task, adds no property to Node's
   * ServerResponse and, above all, no 'close' listener: that listener alone cost ~4 µs of CPU per request on
   * Node 20 with the client on the same CPU (bench/idle-cost.mjs and the report of the idle-cost work).
   */
  private readonly requests = new Map<ServerResponse, number>();
  /** Size of `requests` at which responses that closed without finishing (aborted) are swept out. */
  private sweepAt = 1024;
  private oldCount = 0;
  constructor(readonly alwaysTag = hasAsyncContextFrame()) {}
  private nextId = 1;
  private nextGen = 1;
  private hooked = false;

  /** Starts a transition towards `target`: every running task is old (in `!target`) from now on. */
  beginTransition(target: Universe): void {
    this.adoptRequests();
    this.gen = this.nextGen++;
    this.target = target;
    this.base = target === PATCHED ? UNPATCHED : PATCHED;
    this.untaggedEntered.clear();
    for (const t of this.active) {
      t.state = this.base;
      t.entered = undefined;
    }
    this.oldCount = this.active.size;
  }

  /** Makes every running untracked request a Task (in `active`), with its real start time. */
  private adoptRequests(): void {
    for (const [response, start] of this.requests) {
      if (response.destroyed) continue; // aborted: closed without a finish
      const request = (response as ServerResponse & { req?: IncomingMessage }).req;
      const t = new Task(
        this.nextId++,
        'http',
        request?.method ?? '?',
        request?.url ?? '',
        this.target,
        epoch + start,
      );
      (response as ServerResponse & { [kTask]?: Task })[kTask] = t;
      this.active.add(t);
      response.on('close', this.onResponseClose);
    }
    this.requests.clear();
  }

  /** Drops requests whose response closed without finishing (no finish message will ever remove them). */
  private sweepRequests(): void {
    for (const response of this.requests.keys()) if (response.destroyed) this.requests.delete(response);
    this.sweepAt = Math.max(1024, this.requests.size * 2);
  }

  /** The one 'close' listener of responses that are Tasks (started in, or adopted by, a transition). */
  private readonly onResponseClose = (() => {
    const table = this;
    return function onClose(this: ServerResponse & { [kTask]?: Task }): void {
      const t = this[kTask];
      if (t !== undefined) table.end(t);
    };
  })();

  /** Reverses the running transition: tasks that never switched are now already in the target. */
  reverse(): void {
    this.target = this.target === PATCHED ? UNPATCHED : PATCHED;
    this.oldCount = 0;
    for (const t of this.active) if (t.state !== this.target) this.oldCount++;
  }

  /** Moves every task to the target without any check (force). */
  forceAll(): void {
    for (const t of this.active) t.state = this.target;
    this.base = this.target;
    this.oldCount = 0;
  }

  /** Number of tasks still in the old universe: kept as a count, so that each task's end is O(1). */
  hasPending(): boolean {
    return this.gen !== 0 && this.oldCount > 0;
  }

  /** Ends the transition: untag everything and switch the promise hooks off again (js-runtime.md §6). */
  endTransition(): void {
    this.gen = 0;
    this.untaggedEntered.clear();
    for (const t of this.active) t.entered = undefined;
    if (!this.alwaysTag) this.als.disable();
  }

  /** Tasks still in the old universe of the running transition. */
  pending(): Task[] {
    if (this.gen === 0) return [];
    return [...this.active].filter((t) => t.state !== this.target);
  }

  /** The current task if it is known (tagged, and in this transition unless alwaysTag). Slow path only. */
  current(): Task | undefined {
    const t = this.als.getStore();
    if (t === undefined) return undefined;
    // A continuation of a task that has ended is outside any task.
    if (this.alwaysTag) return this.active.has(t) ? t : undefined;
    return t.gen === this.gen && this.gen !== 0 ? t : undefined;
  }

  /** Universe of the calling context during a transition; records that it entered `func`. */
  universeOf(func: string): Universe {
    const t = this.current();
    if (t === undefined) {
      if (this.alwaysTag) return this.target;
      this.untaggedEntered.add(func);
      return this.base;
    }
    (t.entered ??= new Set()).add(func);
    return t.state;
  }

  /** Registers a task that starts now. During a transition it is tagged with the universe it runs in. */
  begin(kind: Task['kind'], what: string, where?: string): Task {
    const t = new Task(this.nextId++, kind, what, where, this.target);
    if (this.alwaysTag) t.gen = -1;
    else if (this.gen !== 0) t.gen = this.gen;
    if (this.gen !== 0 && kind === 'task') {
      // A task started inside a known task inherits its universe, as a forked child inherits its parent's.
      // A request never does: it is started by the server, and its parser's context may still carry the
      // previous request of the same keep-alive connection.
      const parent = this.current();
      if (parent !== undefined) t.state = parent.state;
    }
    this.active.add(t);
    if (this.gen !== 0 && t.state !== this.target) this.oldCount++;
    return t;
  }

  end(t: Task): void {
    if (!this.active.delete(t)) return;
    if (this.gen !== 0 && t.state !== this.target && --this.oldCount === 0) this.onOldTaskEnd();
  }

  /** Runs fn as a task: the task ends when fn returns, or when the promise it returns settles. */
  run<T>(fn: () => T, label: string): T {
    const t = this.begin('task', label);
    let result: T;
    try {
      result = t.gen !== 0 ? this.als.run(t, fn) : fn();
    } catch (e) {
      this.end(t);
      throw e;
    }
    if (
      result !== null &&
      typeof result === 'object' &&
      typeof (result as { then?: unknown }).then === 'function'
    ) {
      const done = () => this.end(t);
      (result as unknown as PromiseLike<unknown>).then(done, done);
    } else {
      this.end(t);
    }
    return result;
  }

  /** Makes every request of node:http, node:https and node:http2 servers a task. Idempotent. */
  hookServers(): void {
    if (this.hooked) return;
    this.hooked = true;
    // node:http and https publish this right before emitting 'request', in the same synchronous context
    // (Node ≥ 18.7), so enterWith here tags the handler and every continuation it creates, including the
    // request's later 'data'/'end' events (which run(...) would lose: js-runtime.md §6).
    // Outside a transition (promise-hook mode) a request is only an entry in `requests`, removed when its
    // response finishes; otherwise its Task is kept on the response and ends at 'close' (one shared listener).
    subscribe('http.server.request.start', (message) => {
      const { request, response } = message as {
        request: IncomingMessage;
        response: ServerResponse & { [kTask]?: Task };
      };
      if (this.gen === 0 && !this.alwaysTag) {
        this.requests.set(response, Date.now() - epoch);
        if (this.requests.size > this.sweepAt) this.sweepRequests();
        return;
      }
      const t = this.begin('http', request.method ?? '?', request.url ?? '');
      if (t.gen !== 0) this.als.enterWith(t);
      response[kTask] = t;
      response.on('close', this.onResponseClose);
    });
    subscribe('http.server.response.finish', (message) => {
      this.requests.delete((message as { response: ServerResponse }).response);
    });
    this.hookHttp2();
  }

  /**
   * node:http2 has no request channel on Node 20 (nor on 22 before 22.17): wrap the 'stream' emission of its
   * server classes (the compat 'request' event is derived from 'stream', so both APIs are covered). The classes
   * are not exported, and building a server just to reach a prototype costs 15–45 ms of every start-up (a TLS
   * context for the secure one, and node:http2 itself for an app that never uses it). So the prototype is
   * taken from the app's own server when it starts listening: no stream can arrive before that.
   */
  private hookHttp2(): void {
    const hooked = new Set<object>();
    subscribe('tracing:net.server.listen:asyncStart', (message) => {
      const server = (message as { server?: object }).server;
      for (
        let p = server && Object.getPrototypeOf(server);
        p !== null && p !== undefined;
        p = Object.getPrototypeOf(p)
      ) {
        const name = Object.hasOwn(p, 'constructor')
          ? (p as { constructor: { name?: unknown } }).constructor.name
          : '';
        if (name !== 'Http2Server' && name !== 'Http2SecureServer') continue;
        if (!hooked.has(p)) {
          hooked.add(p);
          this.wrapStreamEmit(p as { emit: (event: string | symbol, ...args: unknown[]) => boolean });
        }
        return;
      }
    });
  }

  private wrapStreamEmit(p: { emit: (event: string | symbol, ...args: unknown[]) => boolean }): void {
    const table = this;
    const original = p.emit;
    p.emit = function emit(this: unknown, event: string | symbol, ...args: unknown[]): boolean {
      if (event !== 'stream') return original.call(this, event, ...args);
      const stream = args[0] as { once(e: string, f: () => void): void };
      const headers = (args[1] ?? {}) as Record<string, string>;
      const t = table.begin('http', headers[':method'] ?? '?', headers[':path'] ?? '');
      if (t.gen !== 0) table.als.enterWith(t);
      stream.once('close', () => table.end(t));
      return original.call(this, event, ...args);
    };
  }
}
