// Tasks and universes: which unit of work runs in which universe while a transition lasts (livepatch's
// per-task patch_state). HTTP requests become tasks with no app change; other work through task(fn).
import { AsyncLocalStorage } from 'node:async_hooks';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
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
type TrackedResponse = ServerResponse & { [kTask]?: Task; req?: IncomingMessage };
type HttpSocket = { _httpMessage?: TrackedResponse | null; destroyed: boolean };

/**
 * The sockets of a node:http or node:https server: its connections list (an internal of Node.js, keyed by a
 * symbol, there since Node.js 18.0 for its request timeouts): one parser per connection, each with its socket.
 * Any other server (net, tls) has none and yields nothing.
 */
function connectionsOf(server: object): HttpSocket[] {
  const list = connectionsList(server);
  if (list === undefined) return [];
  const sockets: HttpSocket[] = [];
  for (const parser of list.all()) {
    const socket = (parser as { socket?: HttpSocket } | null)?.socket;
    if (socket !== undefined && socket !== null) sockets.push(socket);
  }
  return sockets;
}

/** The server's connections list when it has a usable one (see connectionsOf). */
function connectionsList(server: object): { all: () => unknown[] } | undefined {
  const key = Object.getOwnPropertySymbols(server).find((k) => k.description === 'http.server.connections');
  const list = key === undefined ? undefined : (server as Record<symbol, { all?: () => unknown[] }>)[key];
  return typeof list?.all === 'function' ? (list as { all: () => unknown[] }) : undefined;
}

/** A node:http or node:https server (net and tls servers have no HTTP timeouts). */
function isHttpServer(server: object): boolean {
  return typeof (server as { headersTimeout?: unknown }).headersTimeout === 'number';
}

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
 * Otherwise (promise hooks: Node 20, 22): outside a transition only task() calls are kept; HTTP requests are
 * not followed at all (the next transition finds the running ones from the servers' connections), and no
 * AsyncLocalStorage runs, so there is no promise-hook tax. During a transition, tasks started since it began are tagged; a context without a
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
   * Servers seen starting to listen (weakly held). In promise-hook mode no request is tracked outside a
   * transition — the request channels are not even subscribed, so Node.js publishes nothing per request — and a
   * transition finds the requests already running from these servers' connections (adoptRequests).
   */
  private readonly servers = new Set<WeakRef<object>>();
  private readonly serversSeen = new WeakSet<object>();
  /** Whether the per-request channel is subscribed (always with alwaysTag, else only during a transition). */
  private requestsHooked = false;
  /**
   * Set when an HTTP server turned out to have no connections list a transition could read (a Node.js whose
   * internals moved): every request is then a Task from its start, as before the idle optimisation, so that a
   * transition still waits for the requests already running instead of missing them.
   */
  private requestsPinned = false;
  private oldCount = 0;
  constructor(readonly alwaysTag = hasAsyncContextFrame()) {}
  private nextId = 1;
  private nextGen = 1;
  private hooked = false;
  private readonly http2Hooked = new WeakSet<object>();

  /** Starts a transition towards `target`: every running task is old (in `!target`) from now on. */
  beginTransition(target: Universe): void {
    this.adoptRequests();
    this.hookRequests();
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

  /**
   * Makes a Task of every request already running on a known server (promise-hook mode: they were not
   * tracked). A connection's running requests are its current response (`socket._httpMessage`) and, when the
   * client pipelines, the responses queued behind it, which Node.js assigns to the socket one after the other:
   * the Task follows that queue and ends when the socket has no untracked response left (a response with a
   * Task of its own started in the transition, and so does every one after it).
   */
  private adoptRequests(): void {
    if (this.alwaysTag) return;
    for (const ref of this.servers) {
      const server = ref.deref();
      if (server === undefined) {
        this.servers.delete(ref);
        continue;
      }
      for (const socket of connectionsOf(server)) {
        const response = socket._httpMessage;
        if (response === null || response === undefined || response[kTask] !== undefined) continue;
        const request = response.req;
        const t = new Task(this.nextId++, 'http', request?.method ?? '?', request?.url ?? '', this.target);
        this.active.add(t);
        this.follow(t, socket, response);
      }
    }
  }

  /** Keeps adopted Task `t` alive while `socket` serves untracked responses, starting with `response`. */
  private follow(t: Task, socket: HttpSocket, response: TrackedResponse): void {
    response[kTask] = t;
    response.once('close', () => {
      // 'close' is emitted on the tick after Node.js finished the response and gave the socket the next one.
      const next = socket._httpMessage;
      if (
        next !== null &&
        next !== undefined &&
        next !== response &&
        next[kTask] === undefined &&
        !socket.destroyed
      )
        this.follow(t, socket, next);
      else this.end(t);
    });
  }

  /** Subscribes to the start of every node:http and node:https request. Idempotent. */
  private hookRequests(): void {
    if (this.requestsHooked) return;
    this.requestsHooked = true;
    subscribe('http.server.request.start', this.onRequestStart);
  }

  /**
   * node:http and https publish this right before emitting 'request', in the same synchronous context
   * (Node ≥ 18.7), so enterWith here tags the handler and every continuation it creates, including the
   * request's later 'data'/'end' events (which run(...) would lose: js-runtime.md §6). The Task is kept on the
   * response and ends at its 'close' (one shared listener).
   */
  private readonly onRequestStart = (message: unknown): void => {
    const { request, response } = message as { request: IncomingMessage; response: TrackedResponse };
    const t = this.begin('http', request.method ?? '?', request.url ?? '');
    if (t.gen !== 0) this.als.enterWith(t);
    response[kTask] = t;
    response.on('close', this.onResponseClose);
  };

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
    if (!this.alwaysTag) {
      this.als.disable();
      // Idle again: Node.js publishes nothing per request once the channel has no subscriber.
      if (this.requestsHooked && !this.requestsPinned) {
        unsubscribe('http.server.request.start', this.onRequestStart);
        this.requestsHooked = false;
      }
    }
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
    // With AsyncContextFrame every request is tagged as it starts; otherwise requests are followed only during
    // a transition, and the servers are remembered (once each, when they start listening) to find the requests
    // a transition begins with.
    if (this.alwaysTag) this.hookRequests();
    subscribe('tracing:net.server.listen:asyncStart', (message) => {
      const server = (message as { server?: object }).server;
      if (server === undefined || this.serversSeen.has(server)) return;
      this.serversSeen.add(server);
      if (this.hookHttp2(server) || this.alwaysTag) return;
      this.servers.add(new WeakRef(server));
      // Node.js fills the connections list when the server is listening ('listening' listeners run in order, and
      // its own was added by the constructor): check there that a transition will be able to read it.
      if (isHttpServer(server) && !this.requestsPinned)
        (server as { once?: (e: string, f: () => void) => void }).once?.('listening', () => {
          if (this.requestsPinned || connectionsList(server) !== undefined) return;
          this.requestsPinned = true;
          this.hookRequests();
        });
    });
  }

  /**
   * node:http2 has no request channel on Node 20 (nor on 22 before 22.17): wrap the 'stream' emission of its
   * server classes (the compat 'request' event is derived from 'stream', so both APIs are covered). The classes
   * are not exported, and building a server just to reach a prototype costs 15–45 ms of every start-up (a TLS
   * context for the secure one, and node:http2 itself for an app that never uses it). So the prototype is
   * taken from the app's own server when it starts listening: no stream can arrive before that.
   */
  private hookHttp2(server: object): boolean {
    for (
      let p = Object.getPrototypeOf(server) as object | null;
      p !== null;
      p = Object.getPrototypeOf(p) as object | null
    ) {
      const name = Object.hasOwn(p, 'constructor')
        ? (p as { constructor: { name?: unknown } }).constructor.name
        : '';
      if (name !== 'Http2Server' && name !== 'Http2SecureServer') continue;
      if (!this.http2Hooked.has(p)) {
        this.http2Hooked.add(p);
        this.wrapStreamEmit(p as { emit: (event: string | symbol, ...args: unknown[]) => boolean });
      }
      return true;
    }
    return false;
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
