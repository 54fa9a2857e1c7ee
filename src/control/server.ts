// The control socket server: handshake, request dispatch, one answer per request, commands serialized.
import { chmodSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { isLivepatchError, LivepatchError } from '../errors.js';
import { encodeFrame, FrameDecoder, MAX_FRAME } from './frame.js';
import { COMMANDS, PROTOCOL_VERSION, type Answer, type Command, type HelloAnswer } from './protocol.js';

export interface HandlerContext {
  /** Sends an event frame for this request (used by `follow`). */
  emit(event: unknown): void;
  /** Runs `fn` when the connection closes. */
  onClose(fn: () => void): void;
}

export interface Handler {
  /** Mutating commands are serialized, as klp_mutex serializes the kernel's. */
  mutating: boolean;
  run(args: Record<string, unknown>, ctx: HandlerContext): unknown;
}

export type Handlers = Partial<Record<Command, Handler>>;

export interface ServerOptions {
  socket: string;
  hello: Omit<HelloAnswer, 'hello' | 'protocol'>;
  /** The commands, or a function that loads them at the first request (start-up does not pay for them). */
  handlers: Handlers | (() => Promise<Handlers>);
  maxFrame?: number;
  /** A client that has not said hello by then is dropped. */
  handshakeMs?: number;
  /** The chain mutating commands run on; given, work of the caller's can run on it too. */
  serialize?: Serialize;
}

export type Serialize = <T>(fn: () => Promise<T>) => Promise<T>;

/** One chain: the next function starts when the previous one settled, as klp_mutex serializes the kernel's work. */
export function makeSerialize(): Serialize {
  let mutex: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = mutex.then(fn, fn);
    mutex = run.catch(() => undefined);
    return run;
  };
}

const commandSet: ReadonlySet<string> = new Set(COMMANDS);
const MAX_CONNECTIONS = 32;
/** A client that lets this much output pile up unread (a stuck `log -f`) is dropped. */
const MAX_UNREAD = 4 * 1024 * 1024;

export function errorBody(e: unknown): { code: string; message: string; details?: Record<string, unknown> } {
  if (isLivepatchError(e))
    return { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) };
  const code = (e as { code?: unknown } | null)?.code;
  return {
    code: typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : 'EINVAL',
    message: e instanceof Error ? e.message : String(e),
  };
}

/**
 * Starts listening on `opts.socket` (a stale file of that name is removed first), mode 0600, unref'd
 * so it never keeps the process alive. Resolves with the server; rejects if it cannot listen.
 */
export async function listenControl(opts: ServerOptions): Promise<Server> {
  // One chain for all mutating commands of all connections: the next starts when the previous settled.
  const serialize = opts.serialize ?? makeSerialize();

  // Bounds what a misbehaving local client can hold: connections here, unread output in serve(). At the limit the
  // oldest connection that has not said hello yet makes room, so idle or garbage connections cannot lock the
  // operator out; only when every connection is a live client is the newcomer told why it is refused.
  // Requests wait for lazily loaded handlers on one promise, so they still run in the order they came.
  let handlers = typeof opts.handlers === 'function' ? undefined : opts.handlers;
  let loading: Promise<Handlers> | undefined;
  const load = opts.handlers;
  const withHandlers = (fn: (h: Handlers | Error) => void): void => {
    if (handlers !== undefined) return fn(handlers);
    loading ??= (load as () => Promise<Handlers>)().then((h) => (handlers = h));
    loading.then(fn, (e: unknown) => fn(e instanceof Error ? e : new Error(String(e))));
  };
  const open = new Set<Socket>();
  const ungreeted = new Set<Socket>();
  const server = createServer((socket) => {
    if (open.size >= MAX_CONNECTIONS) {
      const oldest = ungreeted.values().next().value;
      if (oldest !== undefined) oldest.destroy();
      else {
        refuse(socket, `too many control connections (${MAX_CONNECTIONS}) to this process; try again`);
        return;
      }
    }
    open.add(socket);
    ungreeted.add(socket);
    socket.on('close', () => (open.delete(socket), ungreeted.delete(socket)));
    serve(socket, opts, serialize, withHandlers, () => ungreeted.delete(socket));
  });
  server.on('error', () => {});
  try {
    unlinkSync(opts.socket);
  } catch {}
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // exclusive: in a cluster worker, a listen is otherwise made by the primary, and the app's
    // cluster.on('listening') would see the control socket.
    server.listen({ path: opts.socket, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(opts.socket, 0o600);
  server.unref();
  return server;
}

function refuse(socket: Socket, message: string): void {
  socket.unref();
  socket.on('error', () => {});
  socket.end(encodeFrame({ id: null, ok: false, error: { code: 'EBUSY', message } }));
}

function serve(
  socket: Socket,
  opts: ServerOptions,
  serialize: <T>(fn: () => Promise<T>) => Promise<T>,
  withHandlers: (fn: (h: Handlers | Error) => void) => void,
  onGreeted: () => void,
): void {
  socket.unref();
  socket.on('error', () => {});
  const decoder = new FrameDecoder(opts.maxFrame ?? MAX_FRAME);
  const closers: (() => void)[] = [];
  let greeted = false;
  socket.setTimeout(opts.handshakeMs ?? 2_000, () => {
    if (!greeted) socket.destroy();
  });
  socket.on('close', () => {
    for (const fn of closers.splice(0)) {
      try {
        fn();
      } catch {}
    }
  });

  const send = (msg: unknown): void => {
    if (socket.destroyed || !socket.writable) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(msg);
    } catch (e) {
      // An answer that cannot be encoded (a cycle, a BigInt, too large) is still answered.
      const id = (msg as { id?: unknown }).id ?? null;
      frame = encodeFrame({
        id,
        ok: false,
        error: { code: 'EPROTO', message: `cannot encode answer: ${errorBody(e).message}` },
      });
    }
    if (socket.writableLength > MAX_UNREAD) {
      socket.destroy();
      return;
    }
    socket.write(frame);
  };
  const fail = (id: number | string | null, e: unknown): void =>
    send({ id, ok: false, error: errorBody(e) } satisfies Answer);

  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      if (f.kind === 'oversized') {
        // The length prefix is not to be trusted any more: answer once and close.
        fail(null, f.error);
        socket.end();
        return;
      }
      if (f.kind === 'malformed') {
        fail(null, new LivepatchError('EPROTO', `malformed frame: ${f.reason}`));
        continue;
      }
      if (!greeted) {
        const h = f.value as { hello?: unknown; protocol?: unknown } | null;
        if (h === null || typeof h !== 'object' || h.hello !== 'livepatch') {
          fail(null, new LivepatchError('EPROTO', 'expected a handshake first'));
          socket.end();
          return;
        }
        if (h.protocol !== PROTOCOL_VERSION) {
          fail(
            null,
            new LivepatchError(
              'EPROTO',
              `unsupported protocol version '${String(h.protocol)}' (this process speaks ${PROTOCOL_VERSION})`,
              { protocol: PROTOCOL_VERSION },
            ),
          );
          socket.end();
          return;
        }
        greeted = true;
        onGreeted();
        socket.setTimeout(0);
        send({ hello: 'livepatch', protocol: PROTOCOL_VERSION, ...opts.hello } satisfies HelloAnswer);
        continue;
      }
      const value = f.value;
      withHandlers((h) => dispatch(value, h));
    }
  });

  function dispatch(value: unknown, handlers: Handlers | Error): void {
    const req = value as { id?: unknown; command?: unknown; args?: unknown } | null;
    const id =
      req !== null && typeof req === 'object' && (typeof req.id === 'number' || typeof req.id === 'string')
        ? req.id
        : null;
    if (req === null || typeof req !== 'object' || Array.isArray(req))
      return fail(id, new LivepatchError('EPROTO', 'a request must be a JSON object'));
    if (id === null)
      return fail(null, new LivepatchError('EPROTO', "a request needs an 'id' (number or string)"));
    if (typeof req.command !== 'string' || !commandSet.has(req.command))
      return fail(id, new LivepatchError('EPROTO', `unknown command '${String(req.command).slice(0, 64)}'`));
    if (
      req.args !== undefined &&
      (req.args === null || typeof req.args !== 'object' || Array.isArray(req.args))
    )
      return fail(id, new LivepatchError('EPROTO', "'args' must be a JSON object"));
    if (handlers instanceof Error)
      return fail(id, new LivepatchError('ENODEV', `control commands cannot load: ${handlers.message}`));
    const handler = handlers[req.command as Command];
    if (handler === undefined)
      return fail(
        id,
        new LivepatchError('ENODEV', `command '${req.command}' is not available in this process`),
      );
    const args = (req.args ?? {}) as Record<string, unknown>;
    const ctx: HandlerContext = {
      emit: (event) => send({ id, event }),
      onClose: (fn) => closers.push(fn),
    };
    const run = async (): Promise<unknown> => handler.run(args, ctx);
    (handler.mutating ? serialize(run) : run()).then(
      (result) => send({ id, ok: true, result: result ?? null } satisfies Answer),
      (e: unknown) => fail(id, e),
    );
  }
}
