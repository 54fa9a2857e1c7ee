// Checks made before touching the kernel, each failing with a message that says what is wrong and what to do.
import { readFileSync } from 'node:fs';
import { release as osRelease } from 'node:os';
import { join } from 'node:path';
import { LivepatchError } from '../errors.js';
import type { ModuleInfo } from './modinfo.js';
import { hasLivepatch, livepatchDir, type KernelPaths } from './sysfs.js';

/** CAP_SYS_MODULE (include/uapi/linux/capability.h): needed for init_module/finit_module and delete_module. */
const CAP_SYS_MODULE = 16n;

/** The running kernel's release, as `uname -r` prints it; read from <proc>/sys/kernel/osrelease so tests can move it. */
export function runningRelease(paths: KernelPaths): string {
  try {
    return readFileSync(join(paths.proc, 'sys/kernel/osrelease'), 'utf8').trim();
  } catch {
    return osRelease();
  }
}

/** Throws 'ENODEV' unless the kernel was built with CONFIG_LIVEPATCH (the core makes its directory at boot). */
export function requireLivepatch(paths: KernelPaths): void {
  if (!hasLivepatch(paths)) {
    throw new LivepatchError(
      'ENODEV',
      `this kernel has no livepatch support: '${livepatchDir(paths)}' is missing (needs CONFIG_LIVEPATCH=y)`,
      { path: livepatchDir(paths) },
    );
  }
}

/**
 * Throws 'EPERM' unless this process may load and remove modules: CAP_SYS_MODULE in its effective set
 * (<proc>/self/status CapEff), which root has unless a container or a capability bounding set took it away.
 */
export function requireModulePermission(paths: KernelPaths): void {
  let capEff: bigint | null = null;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(join(paths.proc, 'self/status'), 'utf8'));
    if (m) capEff = BigInt(`0x${m[1]}`);
  } catch {}
  const allowed = capEff === null ? process.getuid?.() === 0 : ((capEff >> CAP_SYS_MODULE) & 1n) === 1n;
  if (!allowed) {
    throw new LivepatchError(
      'EPERM',
      'loading and removing kernel modules needs root (CAP_SYS_MODULE); run it with sudo',
      { capability: 'CAP_SYS_MODULE' },
    );
  }
}

/** Throws 'EINVAL' unless modinfo says `livepatch: Y` (set by MODULE_INFO(livepatch, "Y") in every patch module). */
export function requireLivepatchModule(info: ModuleInfo): void {
  if (!info.livepatch) {
    throw new LivepatchError(
      'EINVAL',
      `'${info.file}' is not a livepatch module: its modinfo has no 'livepatch: Y'; load it with insmod instead`,
      { file: info.file, name: info.name },
    );
  }
}

/**
 * Throws 'EINVAL' unless the module was built for `release`. The kernel checks the whole vermagic string and
 * would only say "Invalid module format"; comparing the release here names both sides.
 */
export function requireRelease(info: ModuleInfo, release: string): void {
  if (info.release !== release) {
    throw new LivepatchError(
      'EINVAL',
      `invalid module version '${info.release ?? 'none'}' for kernel '${release}': '${info.file}' was built for another kernel`,
      { file: info.file, vermagic: info.vermagic, kernel: release },
    );
  }
}

/** Whether the kernel refuses unsigned modules (module.sig_enforce=1 or CONFIG_MODULE_SIG_FORCE). */
export function isSigEnforced(paths: KernelPaths): boolean {
  try {
    return readFileSync(join(paths.sysfs, 'module/module/parameters/sig_enforce'), 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
}

/** Throws 'EPERM' for an unsigned module on a kernel that enforces signatures, before the kernel says "Key was rejected". */
export function requireSignatureIfEnforced(paths: KernelPaths, info: ModuleInfo): void {
  if (info.signature === null && isSigEnforced(paths)) {
    throw new LivepatchError(
      'EPERM',
      `'${info.file}' is not signed and this kernel only loads signed modules (module.sig_enforce); sign it with scripts/sign-file`,
      { file: info.file },
    );
  }
}
