// The control protocol's messages: a version handshake, then requests with a `command`, each answered once.
import { readFileSync } from 'node:fs';

/** Bumped on any incompatible change of the messages below; both sides refuse a version they do not speak. */
export const PROTOCOL_VERSION = 1;

/** The livepatch package version, read once from package.json (dist/src/control → repository root). */
export const LIVEPATCH_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** First frame from the client. */
export interface Hello {
  hello: 'livepatch';
  protocol: number;
}

/** The server's answer to Hello. */
export interface HelloAnswer {
  hello: 'livepatch';
  protocol: number;
  pid: number;
  version: string;
  /** Enforcing mode: only patches signed by one of `keys` load. */
  enforcing: boolean;
  keys: string[];
}

export const COMMANDS = [
  'meta',
  'list',
  'symbols',
  'info',
  'load',
  'enable',
  'disable',
  'remove',
  'force',
  'transition',
  'log',
  'follow',
  'status',
  'sysfs-read',
  'sysfs-write',
] as const;
export type Command = (typeof COMMANDS)[number];

export interface Request {
  id: number | string;
  command: Command;
  args?: Record<string, unknown>;
}

export interface ErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown> | undefined;
}

export type Answer =
  | { id: number | string | null; ok: true; result: unknown }
  | { id: number | string | null; ok: false; error: ErrorBody };

/** A streamed event for a request that follows (`follow`); the stream ends when the client closes. */
export interface EventFrame {
  id: number | string;
  event: unknown;
}

/** The process metadata written beside the socket as `<pid>.json`, and answered to `meta`. */
export interface ProcessMeta {
  pid: number;
  name: string;
  argv: string[];
  node: string;
  startedAt: string;
  livepatch: string;
  protocol: number;
  socket: string;
  /** For a cluster worker (node:cluster): its primary's pid. The CLI acts on a primary and its workers together. */
  clusterPrimary?: number;
}

/** What the process keeps about each patch it loaded over the socket or from the install directory. */
export interface PatchOrigin {
  name: string;
  /** sha256 of the patch source bytes, as received. */
  sha256: string;
  /** File name as the sender named it (for people; the bytes are what count). */
  file: string;
  /** Key id of the trusted key that verified the signature, or null (not enforcing, unsigned). */
  signedBy: string | null;
  loadedAt: string;
  /** Sent over the socket, read from the install directory, or taken from the cluster primary at start. */
  from: 'socket' | 'install' | 'primary';
  /** Fix ids from the patch's `@livepatch-fixes` comment (CVE ids, tickets). */
  fixes: string[];
}
