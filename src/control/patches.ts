// How a patch's code gets into the process: bytes received → signature checked → private copy → import.
import { lstatSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { KeyObject } from 'node:crypto';
import { LivepatchError } from '../errors.js';
import { loaderHandle } from '../loader/handle.js';
import { checkTrustedFile } from './paths.js';
import { sha256, verifySource } from './trust.js';

/** How long a patch module may take to import (`LIVEPATCH_IMPORT_TIMEOUT_MS`, default 10 s). */
const IMPORT_TIMEOUT_MS =
  Number(process.env['LIVEPATCH_IMPORT_TIMEOUT_MS']) > 0
    ? Number(process.env['LIVEPATCH_IMPORT_TIMEOUT_MS'])
    : 10_000;

/** Patch names as the kernel's sysfs would accept them as a directory name, and no more. */
export const PATCH_NAME = /^[a-z0-9_-]{1,64}$/;

export function checkPatchName(name: unknown): string {
  if (typeof name !== 'string' || !PATCH_NAME.test(name))
    throw new LivepatchError(
      'EINVAL',
      `invalid patch name '${String(name).slice(0, 80)}': use 1 to 64 of [a-z0-9_-]`,
      { name: typeof name === 'string' ? name.slice(0, 200) : null },
    );
  return name;
}

export interface ReceivedPatch {
  bytes: Buffer;
  /** The sender's file name, for messages only. */
  file: string;
  signature?: string | undefined;
}

export interface ImportedPatch {
  spec: { name: string } & Record<string, unknown>;
  sha256: string;
  file: string;
  /** The private copy that was imported. */
  copy: string;
}

/**
 * In enforcing mode (`keys` not null), checks the patch's signature over the bytes received; returns the
 * key id that verified it, or null when not enforcing. Throws LivepatchError EPERM naming the problem.
 */
export function verifyReceived(patch: ReceivedPatch, keys: Map<string, KeyObject> | null): string | null {
  return keys === null ? null : verifySource(patch.bytes, patch.signature, keys);
}

/**
 * Imports a patch's source (already verified by the caller) from the process's own directory `dir`.
 * The bytes that were checked are the bytes written and imported: the file is created here, exclusively,
 * in a 0700 directory that only this uid can enter, so nobody can swap it between check and import.
 * Throws LivepatchError EINVAL: does not parse, throws on import, never finishes importing, no patch inside.
 */
export async function importPatch(patch: ReceivedPatch, dir: string, seq: number): Promise<ImportedPatch> {
  const file = basename(patch.file).slice(0, 200) || 'patch.js';
  const hash = sha256(patch.bytes);
  // .mjs: the copy is ESM whatever package.json is near; the query tells the loader not to instrument it.
  const copy = join(dir, `${seq}-${hash.slice(0, 12)}.mjs`);
  writeFileSync(copy, patch.bytes, { mode: 0o600, flag: 'wx' });
  try {
    return { spec: await importCopy(copy, file), sha256: hash, file, copy };
  } catch (e) {
    removeQuietly(copy);
    throw e;
  }
}

/**
 * Imports the private copy `copy` of a patch (`file` is the sender's name, for messages) and returns its spec:
 * what the main thread does once, and each worker thread again with the same copy (src/control/threads.ts).
 * Throws LivepatchError EINVAL: does not parse, throws on import, never finishes importing, no patch inside.
 */
export async function importCopy(copy: string, file: string): Promise<ImportedPatch['spec']> {
  let mod: { default?: unknown };
  let timer: NodeJS.Timeout | undefined;
  // A patch module lives outside any project: its `import 'livepatch'` is resolved to the running copy.
  const release = loaderHandle()?.selfResolve();
  const stuck = new LivepatchError(
    'EINVAL',
    `patch '${file}' did not finish importing within ${IMPORT_TIMEOUT_MS / 1000} s (a top-level await that never settles?)`,
    { file },
  );
  try {
    // A top-level await that never settles would hold the command mutex forever: give up after a while.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(stuck), IMPORT_TIMEOUT_MS);
      timer.unref();
    });
    mod = (await Promise.race([import(pathToFileURL(copy).href + '?livepatch-patch'), timeout])) as {
      default?: unknown;
    };
  } catch (e) {
    if (e === stuck) throw e;
    if (e instanceof SyntaxError)
      throw new LivepatchError(
        'EINVAL',
        `patch '${file}' does not parse: ${e.message}`,
        { file },
        { cause: e },
      );
    throw new LivepatchError(
      'EINVAL',
      `patch '${file}' failed to import: ${errorText(e)}`,
      { file },
      { cause: e },
    );
  } finally {
    clearTimeout(timer);
    release?.();
  }
  const spec = mod.default;
  if (spec === null || typeof spec !== 'object') {
    throw new LivepatchError('EINVAL', `patch '${file}' has no default export of defineLivepatch({...})`, {
      file,
    });
  }
  checkPatchName((spec as { name?: unknown }).name);
  return spec as ImportedPatch['spec'];
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}

/**
 * The installed patches in `dir` (`*.js`, `*.mjs`, in name order) with their detached signatures, and the
 * files refused because someone other than this user (or root) could have written them.
 */
export function readInstalled(dir: string): {
  patches: ReceivedPatch[];
  refused: { file: string; reason: string }[];
} {
  const patches: ReceivedPatch[] = [];
  const refused: { file: string; reason: string }[] = [];
  for (const f of readdirSync(dir)
    .filter((x) => /\.m?js$/.test(x))
    .sort()) {
    try {
      checkTrustedFile(join(dir, f), lstatSync(join(dir, f)));
      let signature: string | undefined;
      try {
        signature = readFileSync(join(dir, `${f}.sig`), 'utf8');
      } catch {}
      patches.push({ bytes: readFileSync(join(dir, f)), file: f, signature });
    } catch (e) {
      refused.push({ file: f, reason: errorText(e) });
    }
  }
  return { patches, refused };
}

/**
 * Fix ids named in the patch's leading comments: `// @livepatch-fixes CVE-2026-1234, SHOP-42`. They are
 * part of the signed bytes, so `status` can say which fixes a process carries without trusting anything else.
 */
export function fixesOf(bytes: Buffer): string[] {
  const head = bytes.subarray(0, 8192).toString('utf8');
  const out: string[] = [];
  for (const m of head.matchAll(/^\s*(?:\/\/|\*|\/\*)\s*@livepatch-fixes\s+(.+)$/gm)) {
    for (const id of (m[1] ?? '').replace(/\*\/\s*$/, '').split(/[\s,]+/))
      if (/^[A-Za-z0-9_.:-]{1,64}$/.test(id)) out.push(id);
  }
  return out.slice(0, 32);
}
