// Signed patches: Ed25519 keys, detached signature files, and the trusted-key set of enforcing mode.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LivepatchError } from '../errors.js';

/** Environment variable naming a public key file or a directory of them; when set, the process enforces. */
export const TRUSTED_KEYS_ENV = 'LIVEPATCH_TRUSTED_KEYS';

/** The detached signature stored as `PATCH.sig`, one line of JSON. */
export interface SignatureFile {
  livepatch: 'signature';
  alg: 'ed25519';
  /** Key id: the first 16 hex digits of sha256 over the public key's SPKI DER. */
  key: string;
  /** sha256 of the signed bytes, so a mismatch can say "signature is for other content". */
  sha256: string;
  /** Base64 Ed25519 signature over the patch source bytes exactly as stored. */
  sig: string;
}

export function keyId(key: KeyObject): string {
  const der = key.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A new Ed25519 key pair as PEM text (private: PKCS#8, public: SPKI) and its key id. */
export function generateKeys(): { privatePem: string; publicPem: string; id: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    id: keyId(publicKey),
  };
}

/** Signs `source` with a PEM private key. Throws EINVAL if the key is not an Ed25519 private key. */
export function signSource(source: Buffer, privatePem: string): SignatureFile {
  let key: KeyObject;
  try {
    key = createPrivateKey(privatePem);
  } catch (e) {
    throw new LivepatchError('EINVAL', `not an Ed25519 private key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new LivepatchError('EINVAL', `key type '${key.asymmetricKeyType ?? 'unknown'}' is not 'ed25519'`);
  return {
    livepatch: 'signature',
    alg: 'ed25519',
    key: keyId(createPublicKey(key)),
    sha256: sha256(source),
    sig: sign(null, source, key).toString('base64'),
  };
}

/** Parses a signature file's text. Throws EPERM naming what is wrong. */
export function parseSignature(text: string): SignatureFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new LivepatchError('EPERM', 'signature is not a livepatch signature file (not JSON)');
  }
  const s = v as Partial<SignatureFile> | null;
  if (
    s === null ||
    typeof s !== 'object' ||
    s.livepatch !== 'signature' ||
    s.alg !== 'ed25519' ||
    typeof s.key !== 'string' ||
    typeof s.sha256 !== 'string' ||
    typeof s.sig !== 'string'
  )
    throw new LivepatchError('EPERM', 'signature is not a livepatch signature file (fields missing)');
  return s as SignatureFile;
}

/**
 * Checks `source` against the signature text with the trusted keys; returns the key id that verified it.
 * Throws EPERM: unsigned, unknown key, content changed since signing, or a bad signature.
 */
export function verifySource(
  source: Buffer,
  sigText: string | undefined,
  keys: Map<string, KeyObject>,
): string {
  if (sigText === undefined)
    throw new LivepatchError('EPERM', 'patch is not signed and this process only loads signed patches');
  const s = parseSignature(sigText);
  const key = keys.get(s.key);
  if (key === undefined)
    throw new LivepatchError('EPERM', `patch is signed by key '${s.key}', which is not trusted here`, {
      key: s.key,
      trusted: [...keys.keys()],
    });
  if (s.sha256 !== sha256(source))
    throw new LivepatchError(
      'EPERM',
      'signature does not match the patch: the patch changed after it was signed',
      {
        signed: s.sha256,
        actual: sha256(source),
      },
    );
  let ok = false;
  try {
    ok = verify(null, source, key, Buffer.from(s.sig, 'base64'));
  } catch {}
  if (!ok) throw new LivepatchError('EPERM', `bad signature by key '${s.key}'`, { key: s.key });
  return s.key;
}

/**
 * Reads the trusted public keys from a PEM file or a directory of `*.pub`/`*.pem` files.
 * Throws EPERM if the path cannot be read or holds no Ed25519 public key: enforcing mode fails closed.
 */
export function loadTrustedKeys(path: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  let files: string[];
  try {
    files = statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((f) => f.endsWith('.pub') || f.endsWith('.pem'))
          .sort()
          .map((f) => join(path, f))
      : [path];
  } catch (e) {
    throw new LivepatchError('EPERM', `cannot read trusted keys '${path}': ${(e as Error).message}`);
  }
  for (const file of files) {
    try {
      const key = createPublicKey(readFileSync(file, 'utf8'));
      if (key.asymmetricKeyType === 'ed25519') keys.set(keyId(key), key);
    } catch {
      // A private key or junk in the directory is not a trusted key; it is skipped, not fatal.
    }
  }
  if (keys.size === 0) throw new LivepatchError('EPERM', `no Ed25519 public key found in '${path}'`);
  return keys;
}
