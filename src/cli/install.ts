// install / uninstall: the directory of patches every process loads at start-up (like kpatch install).
import { chmodSync, existsSync, mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { checkPrivateDir, installDir } from '../control/paths.js';
import { lstatSync } from 'node:fs';
import { LivepatchError } from '../errors.js';
import type { Options } from './args.js';
import { checkLocally, readPatchBytes, readSignature } from './keys.js';
import { EXIT, type Io } from './session.js';

const FILE_NAME = /^[A-Za-z0-9_.-]+\.m?js$/;

export function listInstalled(): { dir: string; files: string[] } {
  const dir = installDir();
  try {
    return {
      dir,
      files: readdirSync(dir)
        .filter((f) => /\.m?js$/.test(f))
        .sort(),
    };
  } catch {
    return { dir, files: [] };
  }
}

function checkNotOff(): void {
  if (process.env['LIVEPATCH_INSTALL_DIR'] === 'off')
    throw new LivepatchError('EINVAL', 'installed patches are turned off here (LIVEPATCH_INSTALL_DIR=off)');
}

export function install(o: Options, io: Io, file: string): number {
  checkNotOff();
  const name = basename(file);
  if (!FILE_NAME.test(name))
    throw new LivepatchError(
      'EINVAL',
      `cannot install '${name}': a patch file name is [A-Za-z0-9_.-] ending in .js or .mjs`,
    );
  const bytes = readPatchBytes(file);
  const signature = readSignature(file);
  checkLocally(bytes, signature, file);
  const dir = installDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkPrivateDir(dir, lstatSync(dir), undefined, true);
  // Written, not copied: the file's bytes are the ones checked above, and its mode is ours (0600), not the source's.
  writeFileSync(join(dir, name), bytes, { mode: 0o600 });
  chmodSync(join(dir, name), 0o600);
  if (signature !== undefined) writeFileSync(join(dir, `${name}.sig`), signature, { mode: 0o600 });
  else if (existsSync(join(dir, `${name}.sig`))) unlinkSync(join(dir, `${name}.sig`));
  if (o.json) io.out(JSON.stringify({ installed: join(dir, name), signed: signature !== undefined }));
  else
    io.out(
      `installed '${name}' in ${dir}${signature !== undefined ? ' (with its signature)' : ''}: processes load it when they start; ` +
        `'livepatch load ${file} --pid P' patches a running one`,
    );
  return EXIT.ok;
}

export function uninstall(o: Options, io: Io, file: string): number {
  checkNotOff();
  const name = basename(file);
  const dir = installDir();
  if (!FILE_NAME.test(name) || !existsSync(join(dir, name)))
    throw new LivepatchError('ENOENT', `patch '${name}' is not installed in ${dir}`);
  unlinkSync(join(dir, name));
  if (existsSync(join(dir, `${name}.sig`))) unlinkSync(join(dir, `${name}.sig`));
  if (o.json) io.out(JSON.stringify({ uninstalled: join(dir, name) }));
  else io.out(`uninstalled '${name}' from ${dir}; running processes keep it until 'livepatch unload'`);
  return EXIT.ok;
}
