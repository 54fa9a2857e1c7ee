// A kernel module file (.ko) read without modinfo: its ELF .modinfo section and its appended signature.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as zlib from 'node:zlib';
import { LivepatchError } from '../errors.js';

/** What scripts/sign-file appends after the signature (include/linux/module_signature.h). */
const SIGNATURE_MAGIC = '~Module signature appended~\n';
/** struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], be32 sig_len. */
const SIGNATURE_INFO_SIZE = 12;

export interface ModuleSignature {
  /** 2 is PKEY_ID_PKCS7, the only kind the kernel has produced since 4.3. */
  id_type: number;
  sig_len: number;
}

export interface ModuleInfo {
  file: string;
  /** The module (and so patch) name: modinfo `name`, else the file name with '-' as '_'. */
  name: string;
  /** Every key of .modinfo with its values in file order (`alias`, `depends`… may repeat). */
  modinfo: Record<string, string[]>;
  livepatch: boolean;
  vermagic: string | null;
  /** The kernel release the module was built for: the first word of vermagic. */
  release: string | null;
  signature: ModuleSignature | null;
}

/** The ELF part of a module file and the signature after it, if any. */
function splitSignature(bytes: Buffer, file: string): { elf: Buffer; signature: ModuleSignature | null } {
  const magic = Buffer.from(SIGNATURE_MAGIC);
  if (bytes.length < magic.length + SIGNATURE_INFO_SIZE || !bytes.subarray(-magic.length).equals(magic)) {
    return { elf: bytes, signature: null };
  }
  const infoStart = bytes.length - magic.length - SIGNATURE_INFO_SIZE;
  const idType = bytes[infoStart + 2] ?? 0;
  const sigLen = bytes.readUInt32BE(infoStart + 8);
  if (sigLen > infoStart)
    throw new LivepatchError('EINVAL', `'${file}': malformed module signature`, { file });
  return { elf: bytes.subarray(0, infoStart - sigLen), signature: { id_type: idType, sig_len: sigLen } };
}

/** Distributions compress modules (.ko.gz, .ko.zst, .ko.xz); node:zlib reads two of the three. */
function decompress(bytes: Buffer, file: string): Buffer {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return zlib.gunzipSync(bytes);
  if (bytes.readUInt32LE(0) === 0xfd2fb528) {
    const zstd = (zlib as unknown as { zstdDecompressSync?: (b: Buffer) => Buffer }).zstdDecompressSync;
    if (zstd) return zstd(bytes);
    throw new LivepatchError('EINVAL', `'${file}' is zstd-compressed; decompress it first (zstd -d)`, {
      file,
    });
  }
  if (bytes.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    throw new LivepatchError('EINVAL', `'${file}' is xz-compressed; decompress it first (xz -d)`, { file });
  }
  return bytes;
}

/** Finds the bytes of one named section of an ELF file (32 or 64 bit, either byte order). */
function elfSection(elf: Buffer, wanted: string, file: string): Buffer | null {
  const bad = (why: string) =>
    new LivepatchError('EINVAL', `'${file}' is not a kernel module: ${why}`, { file });
  if (elf.length < 52 || elf.readUInt32BE(0) !== 0x7f454c46) throw bad('no ELF header');
  const is64 = elf[4] === 2;
  const le = elf[5] === 1;
  const u16 = (o: number) => (le ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (le ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const addr = (o: number) => (is64 ? Number(le ? elf.readBigUInt64LE(o) : elf.readBigUInt64BE(o)) : u32(o));
  try {
    const shoff = addr(is64 ? 0x28 : 0x20);
    const shentsize = u16(is64 ? 0x3a : 0x2e);
    const shnum = u16(is64 ? 0x3c : 0x30);
    const shstrndx = u16(is64 ? 0x3e : 0x32);
    const header = (i: number) => {
      const h = shoff + i * shentsize;
      return {
        name: u32(h),
        offset: addr(h + (is64 ? 24 : 16)),
        size: addr(h + (is64 ? 32 : 20)),
      };
    };
    const strtab = header(shstrndx);
    for (let i = 0; i < shnum; i++) {
      const h = header(i);
      const start = strtab.offset + h.name;
      const end = elf.indexOf(0, start);
      if (elf.toString('latin1', start, end) === wanted) {
        if (h.offset + h.size > elf.length) throw bad(`section '${wanted}' runs past the end of the file`);
        return elf.subarray(h.offset, h.offset + h.size);
      }
    }
    return null;
  } catch (e) {
    if (e instanceof RangeError) throw bad('truncated ELF file');
    throw e;
  }
}

/** Parses .modinfo: NUL-separated "key=value" strings, with NUL padding between them. */
export function parseModinfo(section: Buffer): Record<string, string[]> {
  const info: Record<string, string[]> = {};
  for (const entry of section.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    (info[key] ??= []).push(entry.slice(eq + 1));
  }
  return info;
}

/** Reads a module's identity from its bytes. Throws 'EINVAL' for a file that is not a kernel module. */
export function parseModule(bytes: Buffer, file: string): ModuleInfo {
  const { elf, signature } = splitSignature(decompress(bytes, file), file);
  const section = elfSection(elf, '.modinfo', file);
  if (section === null) {
    throw new LivepatchError('EINVAL', `'${file}' is not a kernel module: it has no '.modinfo' section`, {
      file,
    });
  }
  const modinfo = parseModinfo(section);
  const vermagic = modinfo.vermagic?.[0] ?? null;
  const fallback = basename(file)
    .replace(/\.ko(\.[a-z]+)?$/, '')
    .replace(/-/g, '_');
  return {
    file,
    name: modinfo.name?.[0] ?? fallback,
    modinfo,
    livepatch: modinfo.livepatch?.[0] === 'Y',
    vermagic,
    release: vermagic?.split(' ')[0] ?? null,
    signature,
  };
}

/** Reads and parses a module file. Throws 'ENOENT' when it cannot be read, 'EINVAL' when it is no module. */
export function readModule(file: string): ModuleInfo {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new LivepatchError(
      'ENOENT',
      `cannot read module '${file}': ${(e as Error).message}`,
      { file },
      { cause: e },
    );
  }
  return parseModule(bytes, file);
}
