// The control protocol's framing: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
import { LivepatchError } from '../errors.js';

/** Largest frame either side accepts: big enough for a patch source, small enough to bound memory. */
export const MAX_FRAME = 8 * 1024 * 1024;

export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_FRAME)
    throw new LivepatchError('EPROTO', `frame of ${body.length} bytes exceeds the limit of ${MAX_FRAME}`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

export type Decoded =
  | { kind: 'message'; value: unknown }
  | { kind: 'malformed'; reason: string }
  | { kind: 'oversized'; error: LivepatchError };

/**
 * Splits a byte stream into frames. A frame that is not JSON yields 'malformed' and the stream goes on
 * (its length was still good); a length over `max` yields 'oversized' last, after which the stream cannot
 * be trusted: the decoder yields nothing more and the caller must close it.
 */
export class FrameDecoder {
  #buf: Buffer = Buffer.alloc(0);
  readonly #max: number;

  constructor(max = MAX_FRAME) {
    this.#max = max;
  }

  #broken = false;

  push(chunk: Buffer): Decoded[] {
    if (this.#broken) return [];
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Decoded[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > this.#max) {
        this.#broken = true;
        this.#buf = Buffer.alloc(0);
        const error = new LivepatchError(
          'EPROTO',
          `frame of ${len} bytes exceeds the limit of ${this.#max}`,
          {
            length: len,
            limit: this.#max,
          },
        );
        out.push({ kind: 'oversized', error });
        break;
      }
      if (this.#buf.length < 4 + len) break;
      const body = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      try {
        out.push({ kind: 'message', value: JSON.parse(body.toString('utf8')) });
      } catch (e) {
        out.push({ kind: 'malformed', reason: (e as Error).message });
      }
    }
    return out;
  }

  /** Bytes received that do not yet make a whole frame. */
  get pending(): number {
    return this.#buf.length;
  }
}
