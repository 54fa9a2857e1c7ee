// The client half of the control protocol, used by the CLI and the tests: connect, handshake, request.
import { connect, type Socket } from 'node:net';
import { LivepatchError, type LivepatchErrorCode } from '../errors.js';
import { encodeFrame, FrameDecoder } from './frame.js';
import { PROTOCOL_VERSION, type Command, type ErrorBody, type HelloAnswer } from './protocol.js';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  onEvent: ((e: unknown) => void) | undefined;
}

export function errorFromBody(body: ErrorBody): LivepatchError {
  return new LivepatchError(body.code as LivepatchErrorCode, body.message, body.details);
}

export class ControlClient {
  readonly hello: HelloAnswer;
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  /** Event listeners of requests that stream (`follow`): they outlive the request's answer. */
  readonly #listeners = new Map<number, (e: unknown) => void>();
  #next = 1;
  #closed: LivepatchError | null = null;

  private constructor(socket: Socket, hello: HelloAnswer, decoder: FrameDecoder) {
    this.#socket = socket;
    this.hello = hello;
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        if (f.kind === 'message') this.#receive(f.value);
        else if (f.kind === 'oversized') {
          this.#fail(f.error);
          socket.destroy();
        }
      }
    });
    socket.on('close', () => this.#fail(new LivepatchError('EPROTO', 'connection to the process closed')));
  }

  /**
   * Connects to a control socket and does the handshake. Throws LivepatchError: ENOENT/EPERM for the
   * socket itself (with the errno in details), EPROTO for a refused handshake, ETIMEDOUT.
   */
  static async connect(path: string, timeoutMs = 5000): Promise<ControlClient> {
    const socket = connect(path);
    const decoder = new FrameDecoder();
    return new Promise<ControlClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new LivepatchError(
            'ETIMEDOUT',
            `no answer from '${path}' within ${timeoutMs / 1000} s (is the process's event loop blocked, or the process stopped?)`,
          ),
        );
      }, timeoutMs);
      const onError = (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const code: LivepatchErrorCode =
          e.code === 'EACCES' || e.code === 'EPERM'
            ? 'EPERM'
            : e.code === 'ECONNREFUSED' || e.code === 'ENOENT'
              ? 'ENOENT'
              : 'EPROTO';
        reject(
          new LivepatchError(code, `cannot connect to '${path}': ${e.code ?? e.message}`, {
            errno: e.code ?? null,
          }),
        );
      };
      socket.once('error', onError);
      socket.once('connect', () =>
        socket.write(encodeFrame({ hello: 'livepatch', protocol: PROTOCOL_VERSION })),
      );
      const onData = (chunk: Buffer) => {
        const frames = decoder.push(chunk);
        const first = frames[0];
        if (first === undefined) return;
        socket.off('data', onData);
        socket.off('error', onError);
        socket.on('error', () => {});
        clearTimeout(timer);
        const v =
          first.kind === 'message' ? (first.value as Partial<HelloAnswer> & { error?: ErrorBody }) : null;
        if (v?.hello === 'livepatch' && v.protocol === PROTOCOL_VERSION) {
          const client = new ControlClient(socket, v as HelloAnswer, decoder);
          resolve(client);
          // Frames that came with the hello, if any.
          for (const f of frames.slice(1)) if (f.kind === 'message') client.#receive(f.value);
          return;
        }
        socket.destroy();
        reject(
          v?.error
            ? errorFromBody(v.error)
            : new LivepatchError('EPROTO', `'${path}' did not answer the handshake`),
        );
      };
      socket.on('data', onData);
    });
  }

  /** Sends one request; resolves with its result, rejects with the LivepatchError it answered. */
  request(
    command: Command,
    args?: Record<string, unknown>,
    onEvent?: (e: unknown) => void,
  ): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onEvent });
      if (onEvent !== undefined) this.#listeners.set(id, onEvent);
      this.#socket.write(encodeFrame({ id, command, ...(args ? { args } : {}) }));
    });
  }

  /** Writes raw bytes (for protocol tests). */
  writeRaw(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  close(): void {
    this.#socket.end();
    this.#socket.destroy();
  }

  /** Resolves when the connection is closed by either side. */
  get closed(): Promise<void> {
    if (this.#socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once('close', () => resolve()));
  }

  #receive(value: unknown): void {
    const m = value as { id?: unknown; ok?: boolean; result?: unknown; error?: ErrorBody; event?: unknown };
    if ('event' in m && m.ok === undefined) {
      if (typeof m.id === 'number') this.#listeners.get(m.id)?.(m.event);
      return;
    }
    const p = typeof m.id === 'number' ? this.#pending.get(m.id) : undefined;
    if (p === undefined) {
      // An answer to no request of ours (id null): the server refused something; fail the oldest.
      if (m.ok === false && m.error) {
        const first = this.#pending.entries().next().value;
        if (first) {
          this.#pending.delete(first[0]);
          first[1].reject(errorFromBody(m.error));
        }
      }
      return;
    }
    if (typeof m.id === 'number') this.#pending.delete(m.id);
    if (m.ok === true) p.resolve(m.result);
    else p.reject(errorFromBody(m.error ?? { code: 'EPROTO', message: 'malformed answer' }));
  }

  #fail(e: LivepatchError): void {
    this.#closed ??= e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }
}
