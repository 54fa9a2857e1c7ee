// The loader's two voices: one-line warnings on stderr, and debug lines when NODE_DEBUG names 'livepatch'.
import { writeSync } from 'node:fs';

// Written with writeSync on fd 2, not console.error: the Node 20 hooks thread's console is relayed to the main
// thread asynchronously and is lost if the process exits first; a warning must never be lost or reordered.
function line(text: string): void {
  try {
    writeSync(2, text.endsWith('\n') ? text : `${text}\n`);
  } catch {
    // stderr closed: nowhere left to say it, and the app must go on.
  }
}

/** Prints one `livepatch: …` line on stderr. Never throws. */
export function warn(message: string): void {
  line(`livepatch: ${message}`);
}

const debugOn = /(^|[\s,])(livepatch|\*)([\s,]|$)/i.test(process.env.NODE_DEBUG ?? '');

/** True when NODE_DEBUG names 'livepatch': callers can skip building expensive messages. */
export function isDebug(): boolean {
  return debugOn;
}

/** Prints `LIVEPATCH <pid>: loader: …` on stderr when NODE_DEBUG=livepatch, in util.debuglog's shape. */
export function debug(message: string): void {
  if (debugOn) line(`LIVEPATCH ${process.pid}: loader: ${message}`);
}

/**
 * Milliseconds from an arbitrary start, for durations. Not performance.now(): that global loads perf_hooks and ten
 * modules behind it on first use, which an app that never times anything would pay at every start.
 */
export function now(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}
