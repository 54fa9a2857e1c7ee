// The on-disk cache of instrumented output, so a restart does not pay for parsing every module again. An entry
// holds the code and, after it, the module's symbol table, which only `<key>.sym` reads (and only on demand).
// Entries are written to a temporary file and renamed into place: a crash mid-write leaves no torn entry, and
// two processes starting together at worst both write the same bytes. Each part of an entry carries a CRC-32 of
// its bytes and the code its length, so a damaged entry is noticed, ignored and replaced.
import { hash } from 'node:crypto';
import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { debug, warn } from './log.js';

/**
 * Bump when the entry layout or anything the loader adds around the instrumenter's output changes (5: CRC-32s
 * per part instead of one sha256 of the entry, and a flag for code that is ASCII).
 */
export const CACHE_FORMAT = 5;

/** Appended to a key, names the symbol table stored in that key's entry, after the code. */
export const SYMBOLS = '.sym';

const MAGIC = '// livepatch-cache ';

export interface DiskCache {
  readonly dir: string;
  /**
   * The cached code for `key`, or for `<key>.sym` the symbol table stored with it; undefined when missing,
   * unreadable or damaged (a damaged entry is removed). Never throws.
   */
  get(key: string): string | undefined;
  /**
   * Stores `code` under `key` and returns true once it is in place. `set('<key>.sym', table)` first keeps the
   * table for the entry that `set(key, code)` then writes (one file, one rename: a cold start writes each module
   * once) and returns true. Never throws; the first failure turns writing off with one warning.
   */
  set(key: string, code: string): boolean;
}

function sha256(text: string): string {
  return hash('sha256', text, 'hex');
}

// The checksum guards against damage (a disk, a full file system, someone editing an entry), not against an
// adversary: the directory is private to the user (isPrivateDir) and whoever can write to it can run code anyway.
// CRC-32 finds every error burst up to 32 bits and misses random damage once in 2^32; with the code's length also
// checked, a truncated entry is always found. It costs a third of a sha256 (zlib's is hardware-assisted), on the
// 4-6 MB a 500-module start reads. zlib.crc32 is in Node 20.15+ and 22.2+; before that, a table in JavaScript.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
let crcTable: Int32Array | undefined;

/** CRC-32 (ISO-HDLC, zlib's) in JavaScript, for Node versions without zlib.crc32. Exported for its test. */
export function portableCrc32(bytes: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const crc32 = nativeCrc32 ?? portableCrc32;

function checksum(bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, '0');
}

// One buffer for reading entries, kept while start-up reads one after another and left to the garbage collector
// afterwards: reading into it spares the fstat and the allocation of a fresh buffer per entry (a new 5 MB of
// external memory over a start, which also brings garbage collections forward).
let scratch: WeakRef<Buffer> | undefined;

/** The bytes of the file at `path`, in a buffer that the next call reuses. Throws what openSync throws. */
function readEntry(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    let buf = scratch?.deref() ?? Buffer.allocUnsafeSlow(256 * 1024);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        const bigger = Buffer.allocUnsafeSlow(buf.length * 2);
        buf.copy(bigger, 0, 0, n);
        buf = bigger;
      }
      const read = readSync(fd, buf, n, buf.length - n, null);
      if (read === 0) break;
      n += read;
    }
    scratch = new WeakRef(buf);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function tmpSuffix(): string {
  return Math.floor(Math.random() * 2 ** 48)
    .toString(36)
    .padStart(10, '0');
}

/** The cache key for one instrumentation: a hash of everything the output depends on. */
export function cacheKey(parts: readonly (string | number)[]): string {
  return sha256(JSON.stringify([CACHE_FORMAT, ...parts]));
}

// A cache in a shared temporary directory is code that will be run: it must be ours alone, or someone else
// could plant an entry. Anything else than a real directory owned by us and writable only by us is refused.
function isPrivateDir(dir: string): boolean {
  const st = lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0;
}

/** For a permission error: who owns the directory, when it is not this process's user (a cache warmed as root). */
function ownerHint(dir: string, code: string): string {
  if ((code !== 'EACCES' && code !== 'EPERM') || typeof process.getuid !== 'function') return '';
  try {
    const owner = lstatSync(dir).uid;
    const me = process.getuid();
    return owner === me
      ? ''
      : `: it belongs to uid ${owner} and this process runs as uid ${me}; run 'livepatch cache warm' as this user`;
  } catch {
    return '';
  }
}

/**
 * Opens (creating it if needed) the cache in `root`. Returns null, after one warning, when the directory cannot
 * be used; when `shared` (our per-user default under tmp) it must also be private to this user.
 */
export function openCache(root: string, shared: boolean): DiskCache | null {
  const dir = join(root, `v${CACHE_FORMAT}`);
  // The shared default under tmp is this user's alone. A cache beside the app is as readable as the app's own files
  // and writable only by its owner: a deploy step run as root (`RUN livepatch cache warm` before `USER node`)
  // prepares entries that the service's user must be able to read.
  const dirMode = shared ? 0o700 : 0o755;
  const fileMode = shared ? 0o600 : 0o644;
  try {
    mkdirSync(dir, { recursive: true, mode: dirMode });
    if (shared && !(isPrivateDir(root) && isPrivateDir(dir))) {
      warn(`cache directory '${root}' is not private to this user; instrumenting without a cache`);
      return null;
    }
  } catch (e) {
    warn(
      `cannot use cache directory '${root}' (${(e as NodeJS.ErrnoException).code ?? String(e)}); instrumenting without a cache`,
    );
    return null;
  }
  let writable = true;
  // Tables handed over by set('<key>.sym'), waiting for their code.
  const tables = new Map<string, string>();
  return {
    dir,
    get(name) {
      const table = name.endsWith(SYMBOLS);
      const key = table ? name.slice(0, -SYMBOLS.length) : name;
      const path = join(dir, key);
      let bytes: Buffer;
      try {
        bytes = readEntry(path);
      } catch {
        return undefined;
      }
      // `// livepatch-cache <crc of code> <bytes of code> <crc of table, or -> <a: code is ASCII, u: UTF-8>\n`
      // then the code, then the table.
      const eol = bytes.indexOf(10);
      const [magic, sum, size, tableSum, encoding] = bytes
        .toString('latin1', 0, Math.max(eol, 0))
        .split(' ', 6)
        .slice(1);
      const start = eol + 1;
      const end = start + Number(size);
      const damaged =
        eol < 0 ||
        `// ${magic} ` !== MAGIC ||
        !Number.isInteger(end) ||
        end < start ||
        end > bytes.length ||
        (tableSum === '-' && end !== bytes.length) ||
        (encoding !== 'a' && encoding !== 'u') ||
        (table
          ? tableSum !== '-' && checksum(bytes.subarray(end)) !== tableSum
          : checksum(bytes.subarray(start, end)) !== sum);
      if (damaged) {
        debug(`cache entry '${key}' is damaged; ignoring it`);
        try {
          unlinkSync(path);
        } catch {}
        return undefined;
      }
      if (table) return tableSum === '-' ? undefined : bytes.toString('utf8', end);
      // Only the code is decoded: the string V8 keeps as the module's source holds no table. ASCII, as nearly all
      // code is, is copied byte for byte rather than decoded.
      return bytes.toString(encoding === 'a' ? 'latin1' : 'utf8', start, end);
    },
    set(name, text) {
      if (!writable) return false;
      if (name.endsWith(SYMBOLS)) {
        tables.set(name.slice(0, -SYMBOLS.length), text);
        return true;
      }
      const table = tables.get(name);
      tables.delete(name);
      const code = Buffer.from(text, 'utf8');
      const rest = table === undefined ? undefined : Buffer.from(table, 'utf8');
      const ascii = code.length === text.length ? 'a' : 'u';
      const header = `${MAGIC}${checksum(code)} ${code.length} ${rest === undefined ? '-' : checksum(rest)} ${ascii}\n`;
      const path = join(dir, name);
      // Unique, not secret (the directory is ours alone): the pid, and 48 random bits for two containers that share
      // the cache with the same pid. crypto.randomBytes cost a cold start ~70 µs per entry on a VM.
      const tmp = `${path}.${process.pid}.${tmpSuffix()}.tmp`;
      try {
        writeFileSync(tmp, Buffer.concat([Buffer.from(header, 'latin1'), code, ...(rest ? [rest] : [])]), {
          flag: 'wx',
          mode: fileMode,
        });
        renameSync(tmp, path);
        return true;
      } catch (e) {
        writable = false;
        try {
          unlinkSync(tmp);
        } catch {}
        const code = (e as NodeJS.ErrnoException).code ?? String(e);
        warn(`cannot write to cache directory '${root}' (${code}${ownerHint(dir, code)}); not caching`);
        return false;
      }
    },
  };
}
