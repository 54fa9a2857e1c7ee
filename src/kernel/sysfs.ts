// The kernel's livepatch sysfs tree (/sys/kernel/livepatch): reading patches, writing attributes, naming errors.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LivepatchError } from '../errors.js';

/** Where the command looks for the system: `sysfs` stands for /sys, `proc` for /proc, `root` for / (install). */
export interface KernelPaths {
  sysfs: string;
  proc: string;
  root: string;
}

export const defaultPaths: KernelPaths = { sysfs: '/sys', proc: '/proc', root: '/' };

export interface KernelFunc {
  name: string;
  sympos: number;
}

export interface KernelObject {
  name: string;
  /** `null` on kernels before 6.0, which have no `<obj>/patched`. */
  patched: boolean | null;
  funcs: KernelFunc[];
}

/** One patch as the kernel shows it; the JSON shape of DESIGN §6's tree. */
export interface KernelPatch {
  name: string;
  enabled: boolean;
  transition: boolean;
  /** `null` on kernels before 6.11 (no `replace` file). */
  replace: boolean | null;
  /** `null` on kernels before 6.13 (no `stack_order` file). */
  stack_order: number | null;
  objects: KernelObject[];
}

export type PatchAttr = 'enabled' | 'transition' | 'force' | 'replace' | 'stack_order';

const patchAttrs = new Set<string>(['enabled', 'transition', 'force', 'replace', 'stack_order']);

export function livepatchDir(paths: KernelPaths): string {
  return join(paths.sysfs, 'kernel/livepatch');
}

export function patchDir(paths: KernelPaths, name: string): string {
  return join(livepatchDir(paths), name);
}

/** The kernel has livepatch support (CONFIG_LIVEPATCH) iff the core created its sysfs directory at boot. */
export function hasLivepatch(paths: KernelPaths): boolean {
  return existsSync(livepatchDir(paths));
}

/**
 * Patch names are module names: the kernel turns '-' into '_' in them (livepatch-foo.ko → livepatch_foo).
 * Accepting either spelling saves users a confusing "no such patch".
 */
export function normalizeName(name: string): string {
  return name.replace(/\.ko$/, '').replace(/-/g, '_');
}

/** Throws 'EINVAL' for a name that cannot be a module name, so it can never escape the tree. */
export function checkName(name: string): string {
  const n = normalizeName(name);
  if (!/^[A-Za-z0-9_]{1,55}$/.test(n))
    throw new LivepatchError('EINVAL', `invalid patch name '${name}'`, { name });
  return n;
}

function readValue(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function readBool(file: string): boolean | null {
  const v = readValue(file);
  return v === null ? null : v === '1';
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readObject(dir: string, name: string): KernelObject {
  const funcs: KernelFunc[] = [];
  for (const entry of readdirSync(dir).sort()) {
    // Function directories are "<old_name>,<sympos>"; the kernel shows sympos 0 as 1.
    const m = /^(.+),(\d+)$/.exec(entry);
    if (m && isDir(join(dir, entry))) funcs.push({ name: m[1] as string, sympos: Number(m[2]) });
  }
  return { name, patched: readBool(join(dir, 'patched')), funcs };
}

/**
 * Reads one patch, or returns `null` when it is not (or no longer) in the tree. The kernel removes a freed
 * patch's directory asynchronously, so a directory vanishing between two reads is not an error.
 */
export function readPatch(paths: KernelPaths, name: string): KernelPatch | null {
  const dir = patchDir(paths, name);
  try {
    const enabled = readValue(join(dir, 'enabled'));
    if (enabled === null) return null;
    const stackOrder = readValue(join(dir, 'stack_order'));
    const objects = readdirSync(dir)
      .filter((e) => !patchAttrs.has(e) && isDir(join(dir, e)))
      .sort()
      .map((e) => readObject(join(dir, e), e));
    return {
      name,
      enabled: enabled === '1',
      transition: readBool(join(dir, 'transition')) ?? false,
      replace: readBool(join(dir, 'replace')),
      stack_order: stackOrder === null ? null : Number(stackOrder),
      objects,
    };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Every patch in the tree, oldest first when the kernel says (stack_order), else by name. */
export function readPatches(paths: KernelPaths): KernelPatch[] {
  let names: string[];
  try {
    names = readdirSync(livepatchDir(paths));
  } catch {
    return [];
  }
  const patches = names.map((n) => readPatch(paths, n)).filter((p): p is KernelPatch => p !== null);
  return patches.sort((a, b) => (a.stack_order ?? 0) - (b.stack_order ?? 0) || a.name.localeCompare(b.name));
}

/** The patch in transition, if any: the kernel allows only one at a time. */
export function transitionPatch(paths: KernelPaths): KernelPatch | null {
  return readPatches(paths).find((p) => p.transition) ?? null;
}

/**
 * Writes a patch attribute, turning the kernel's errno into a message that says what it means for this
 * attribute (core.c: enabled_store, force_store). Throws LivepatchError.
 */
export function writePatchAttr(
  paths: KernelPaths,
  name: string,
  attr: 'enabled' | 'force',
  value: '0' | '1',
): void {
  try {
    writeFileSync(join(patchDir(paths, name), attr), value);
  } catch (e) {
    throw sysfsWriteError(e as NodeJS.ErrnoException, name, attr, value);
  }
}

/** Maps a failed sysfs write to the kernel's meaning. Exported for its table-driven test. */
export function sysfsWriteError(
  e: NodeJS.ErrnoException,
  name: string,
  attr: string,
  value: string,
): LivepatchError {
  const details = { patch: name, attr, value, errno: e.code };
  const file = `/sys/kernel/livepatch/${name}/${attr}`;
  switch (e.code) {
    case 'ENOENT':
      return new LivepatchError('ENOENT', `no such patch '${name}'`, details, { cause: e });
    case 'EBUSY':
      return new LivepatchError(
        'EBUSY',
        `another patch is in transition; wait for it (livepatch kernel list) before changing '${name}'`,
        details,
        { cause: e },
      );
    case 'EINVAL':
      if (attr === 'force')
        return new LivepatchError(
          'EINVAL',
          `patch '${name}' is not in transition; there is nothing to force`,
          details,
          {
            cause: e,
          },
        );
      return new LivepatchError(
        'EINVAL',
        value === '1'
          ? `patch '${name}' is already enabled, or was disabled and cannot be re-enabled (Linux 5.1+)`
          : `patch '${name}' is already disabled or being disabled`,
        details,
        { cause: e },
      );
    case 'EACCES':
    case 'EPERM':
      return new LivepatchError('EPERM', `permission denied writing '${file}' (run as root)`, details, {
        cause: e,
      });
    default:
      return new LivepatchError('EINVAL', `failed to write '${file}': ${e.message}`, details, { cause: e });
  }
}

/** Is the kernel module loaded (/sys/module/<name> exists and is a loadable module, not a built-in)? */
export function isModuleLoaded(paths: KernelPaths, name: string): boolean {
  return existsSync(join(paths.sysfs, 'module', name, 'refcnt'));
}

/** The module's reference count, or `null` when it is not loaded. */
export function moduleRefcnt(paths: KernelPaths, name: string): number | null {
  const v = readValue(join(paths.sysfs, 'module', name, 'refcnt'));
  return v === null ? null : Number(v);
}
