// The event log: the kernel's livepatch lines in a bounded per-process buffer (livepatch's dmesg).

export interface LogLine {
  seq: number;
  time: number;
  line: string;
}

export interface EventLog {
  /** Lines with seq > since (all kept lines when since is absent), oldest first. */
  lines(since?: number): LogLine[];
  /** Calls fn synchronously for every new line; returns the unsubscribe function. */
  subscribe(fn: (line: LogLine) => void): () => void;
}

const CAPACITY = 2000;

export class RingLog implements EventLog {
  private readonly buf: LogLine[] = [];
  private seq = 0;
  private readonly subscribers = new Set<(line: LogLine) => void>();
  // Lines also go to NODE_DEBUG=livepatch, the usual Node switch for a library's diagnostics.
  private readonly debug = /\blivepatch\b/.test(process.env.NODE_DEBUG ?? '');

  /** Appends one line, e.g. `livepatch: enabling patch 'fix-1'`. Never throws. */
  write(line: string): void {
    const entry = { seq: ++this.seq, time: Date.now(), line };
    this.buf.push(entry);
    if (this.buf.length > CAPACITY) this.buf.splice(0, this.buf.length - CAPACITY);
    if (this.debug) process.stderr.write(`${line}\n`);
    for (const fn of this.subscribers) {
      try {
        fn(entry);
      } catch {
        // A subscriber's failure must not break the operation that logged.
      }
    }
  }

  lines(since = 0): LogLine[] {
    return this.buf.filter((l) => l.seq > since);
  }

  subscribe(fn: (line: LogLine) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
