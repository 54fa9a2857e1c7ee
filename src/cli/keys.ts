// keygen and sign, and the CLI's own signature check before a patch is sent (the process checks again).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { LivepatchError } from '../errors.js';
import {
  generateKeys,
  loadTrustedKeys,
  signSource,
  TRUSTED_KEYS_ENV,
  verifySource,
} from '../control/trust.js';
import type { Options } from './args.js';
import { EXIT, type Io } from './session.js';

/** The bytes of a patch file the operator named; 'ENOENT' with the reason when it cannot be read. */
export function readPatchBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new LivepatchError('ENOENT', `cannot read patch '${file}': ${err.code ?? err.message}`);
  }
}

/** The detached signature beside a patch (`fix.js.sig`), or undefined. */
export function readSignature(file: string): string | undefined {
  try {
    return readFileSync(`${file}.sig`, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * When this shell has trusted keys configured, a patch that would be refused is refused here already,
 * with the same message the process would give. Returns the verifying key id, or null when not enforcing.
 */
export function checkLocally(bytes: Buffer, signature: string | undefined, file: string): string | null {
  const path = process.env[TRUSTED_KEYS_ENV];
  if (path === undefined || path === '') return null;
  try {
    return verifySource(bytes, signature, loadTrustedKeys(path));
  } catch (e) {
    throw new LivepatchError(
      'EPERM',
      `patch '${file}': ${(e as Error).message}`,
      (e as LivepatchError).details,
    );
  }
}

export function keygen(o: Options, io: Io, base: string | undefined): number {
  const out = base ?? o.out ?? 'livepatch-signing';
  const priv = `${out}.key`;
  const pub = `${out}.pub`;
  for (const f of [priv, pub])
    if (existsSync(f)) throw new LivepatchError('EEXIST', `'${f}' already exists; not overwriting a key`);
  const k = generateKeys();
  writeFileSync(priv, k.privatePem, { mode: 0o600, flag: 'wx' });
  writeFileSync(pub, k.publicPem, { mode: 0o644, flag: 'wx' });
  if (o.json) io.out(JSON.stringify({ key: k.id, private: priv, public: pub }));
  else
    io.out(
      `key ${k.id}\n  private key: ${priv} (keep it secret; sign with 'livepatch sign PATCH --key ${priv}')\n` +
        `  public key:  ${pub} (trust it with ${TRUSTED_KEYS_ENV}=${pub} in the service's environment)`,
    );
  return EXIT.ok;
}

export function sign(o: Options, io: Io, file: string): number {
  if (o.key === undefined) throw new LivepatchError('EINVAL', "'sign' needs '--key PRIVATE_KEY_FILE'");
  const bytes = readPatchBytes(file);
  let pem: string;
  try {
    pem = readFileSync(o.key, 'utf8');
  } catch (e) {
    throw new LivepatchError(
      'ENOENT',
      `cannot read key '${o.key}': ${(e as NodeJS.ErrnoException).code ?? ''}`,
    );
  }
  const s = signSource(bytes, pem);
  writeFileSync(`${file}.sig`, JSON.stringify(s) + '\n');
  if (o.json) io.out(JSON.stringify({ file, signature: `${file}.sig`, key: s.key, sha256: s.sha256 }));
  else io.out(`signed '${file}' (sha256 ${s.sha256.slice(0, 16)}…) with key ${s.key}: wrote '${file}.sig'`);
  return EXIT.ok;
}
