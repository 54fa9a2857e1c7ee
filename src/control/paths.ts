// Where a process's control socket, metadata and private patch copies live, and the ownership checks on them.
import { lstatSync, mkdirSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LivepatchError } from '../errors.js';

/**
 * The per-user control directory: `$XDG_RUNTIME_DIR/livepatch`, else `<tmpdir>/livepatch-<uid>`.
 * The CLI and every process compute it the same way, so discovery needs no configuration.
 */
export function controlDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg.startsWith('/')) return join(xdg, 'livepatch');
  return join(tmpdir(), `livepatch-${uid()}`);
}

export function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

export function socketPath(dir: string, pid: number): string {
  return join(dir, `${pid}.sock`);
}

export function metaPath(dir: string, pid: number): string {
  return join(dir, `${pid}.json`);
}

/** The process's own directory for the patch sources it was sent; only it writes there. */
export function privatePatchDir(dir: string, pid: number): string {
  return join(dir, `${pid}.d`);
}

/**
 * Makes `dir` if missing (mode 0700) and checks that it is a real directory owned by this uid and
 * not writable by group or others. Anything else could let another user plant a socket or a patch
 * file, so it is refused rather than repaired. Throws LivepatchError EPERM.
 */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new LivepatchError('EPERM', `cannot create directory '${dir}': ${(e as Error).message}`);
  }
  checkPrivateDir(dir, lstatSync(dir));
}

/**
 * The pure part of ensurePrivateDir, for tests: `st` is the lstat of `dir`. With `trustRoot`, a directory
 * owned by root is accepted too (an install directory an administrator prepared: root can patch anyway).
 */
export function checkPrivateDir(
  dir: string,
  st: Pick<Stats, 'isDirectory' | 'uid' | 'mode'>,
  me = uid(),
  trustRoot = false,
): void {
  if (!st.isDirectory()) throw new LivepatchError('EPERM', `'${dir}' is not a directory (a symlink?)`);
  checkOwnerAndMode(dir, st, me, trustRoot);
}

/** A file we will run: a regular file (not a symlink), owned by us (or root), writable by nobody else. */
export function checkTrustedFile(file: string, st: Pick<Stats, 'isFile' | 'uid' | 'mode'>, me = uid()): void {
  if (!st.isFile()) throw new LivepatchError('EPERM', `'${file}' is not a regular file (a symlink?)`);
  checkOwnerAndMode(file, st, me, true);
}

function checkOwnerAndMode(
  path: string,
  st: Pick<Stats, 'uid' | 'mode'>,
  me: number,
  trustRoot: boolean,
): void {
  if (st.uid !== me && !(trustRoot && st.uid === 0))
    throw new LivepatchError('EPERM', `'${path}' is owned by uid ${st.uid}, not by this user (uid ${me})`, {
      owner: st.uid,
      uid: me,
    });
  if ((st.mode & 0o022) !== 0)
    throw new LivepatchError(
      'EPERM',
      `'${path}' is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); run 'chmod go-w ${path}'`,
      { mode: st.mode & 0o777 },
    );
}

/**
 * The directory of installed patches, loaded at start-up (like /var/lib/kpatch): `$LIVEPATCH_INSTALL_DIR`,
 * else `$XDG_DATA_HOME/livepatch/patches`, else `~/.local/share/livepatch/patches`.
 */
export function installDir(env: NodeJS.ProcessEnv = process.env): string {
  const own = env['LIVEPATCH_INSTALL_DIR'];
  if (own !== undefined && own !== '') return own;
  const data = env['XDG_DATA_HOME'];
  const base =
    data !== undefined && data.startsWith('/') ? data : join(env['HOME'] ?? tmpdir(), '.local/share');
  return join(base, 'livepatch/patches');
}
