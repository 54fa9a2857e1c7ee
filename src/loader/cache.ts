// The on-disk cache of instrumented output, so a restart does not pay for parsing every module again. Beside each
// entry of code, `<key>.sym` holds its symbol table, read only when something asks for symbols.
// Entries are written to a temporary file and renamed into place: a crash mid-write leaves no torn entry, and
// two processes starting together at worst both write the same bytes. Each entry carries the sha256 of its
// body, so a damaged entry is noticed, ignored and replaced.
import { hash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debug, warn } from './log.js';

/** Bump when the entry layout or anything the loader adds around the instrumenter's output changes. */
export const CACHE_FORMAT = 2;

const MAGIC = '// livepatch-cache ';

export interface DiskCache {
  readonly dir: string;
  /** The cached output for `key`, or undefined (missing, unreadable or damaged). Never throws. */
  get(key: string): string | undefined;
  /**
   * Stores `code` under `key` (a hex key, optionally with a `.sym` suffix for a symbol table) and returns true
   * once it is in place. Never throws; the first failure turns writing off with one warning.
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
  return {
    dir,
    get(key) {
      const path = join(dir, key);
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        return undefined;
      }
      const eol = text.indexOf('\n');
      const body = text.slice(eol + 1);
      if (eol < 0 || text.slice(0, eol) !== MAGIC + sha256(body)) {
        debug(`cache entry '${key}' is damaged; ignoring it`);
        try {
          unlinkSync(path);
        } catch {}
        return undefined;
      }
      return body;
    },
    set(key, code) {
      if (!writable) return false;
      const path = join(dir, key);
      const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        writeFileSync(tmp, `${MAGIC}${sha256(code)}\n${code}`, { flag: 'wx', mode: 0o600 });
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
