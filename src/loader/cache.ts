// The on-disk cache of instrumented output, so a restart does not pay for parsing every module again. An entry
// holds the code and, after it, the module's symbol table, which only `<key>.sym` reads (and only on demand).
// Entries are written to a temporary file and renamed into place: a crash mid-write leaves no torn entry, and
// two processes starting together at worst both write the same bytes. Each entry carries the sha256 of its
// body, so a damaged entry is noticed, ignored and replaced.
import { hash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debug, warn } from './log.js';

/**
 * Bump when the entry layout or anything the loader adds around the instrumenter's output changes (4: a map file a
 * module points to is no longer composed into the code of a process without source maps).
 */
export const CACHE_FORMAT = 4;

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

/**
 * Opens (creating it if needed) the cache in `root`. Returns null, after one warning, when the directory cannot
 * be used; when `shared` (our per-user default under tmp) it must also be private to this user.
 */
export function openCache(root: string, shared: boolean): DiskCache | null {
  const dir = join(root, `v${CACHE_FORMAT}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
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
        bytes = readFileSync(path);
      } catch {
        return undefined;
      }
      // `// livepatch-cache <sha256 of the body>[ <bytes of code, when a table follows it>]\n<body>`
      const eol = bytes.indexOf(10);
      const [magic, sum, size] = bytes.toString('latin1', 0, Math.max(eol, 0)).split(' ', 4).slice(1);
      const body = bytes.subarray(eol + 1);
      const end = size === undefined ? body.length : Number(size);
      if (
        eol < 0 ||
        `// ${magic} ` !== MAGIC ||
        hash('sha256', body, 'hex') !== sum ||
        !Number.isInteger(end) ||
        end < 0 ||
        end > body.length
      ) {
        debug(`cache entry '${key}' is damaged; ignoring it`);
        try {
          unlinkSync(path);
        } catch {}
        return undefined;
      }
      if (table) return size === undefined ? undefined : body.toString('utf8', end);
      // Only the code is decoded: the string V8 keeps as the module's source holds no table.
      return body.toString('utf8', 0, end);
    },
    set(name, text) {
      if (!writable) return false;
      if (name.endsWith(SYMBOLS)) {
        tables.set(name.slice(0, -SYMBOLS.length), text);
        return true;
      }
      const table = tables.get(name);
      tables.delete(name);
      const body = table === undefined ? text : text + table;
      const size = table === undefined ? '' : ` ${Buffer.byteLength(text)}`;
      const path = join(dir, name);
      const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        writeFileSync(tmp, `${MAGIC}${sha256(body)}${size}\n${body}`, { flag: 'wx', mode: 0o600 });
        renameSync(tmp, path);
        return true;
      } catch (e) {
        writable = false;
        try {
          unlinkSync(tmp);
        } catch {}
        warn(
          `cannot write to cache directory '${root}' (${(e as NodeJS.ErrnoException).code ?? String(e)}); not caching`,
        );
        return false;
      }
    },
  };
}
