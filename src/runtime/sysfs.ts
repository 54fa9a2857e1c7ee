// The sysfs-style tree of /sys/kernel/livepatch, read and written with the kernel's rules (kstrtobool,
// EINVAL, EBUSY, EACCES), plus the JSON views built from the same state (tree, patch info).
import { LivepatchError } from '../errors.js';
import type { Core, Patch, PatchObject } from './core.js';
import { PROCESS_OBJECT } from './spec.js';

/** kstrtobool: 1/y/Y/t/T or 0/n/N/f/F as the first character, or on/of[f]; trailing text ignored. */
export function parseBool(value: string): boolean {
  const c = value[0];
  if (c !== undefined) {
    if ('1yYtT'.includes(c)) return true;
    if ('0nNfF'.includes(c)) return false;
    if ((c === 'o' || c === 'O') && value.length >= 2) {
      const d = value[1]!.toLowerCase();
      if (d === 'n') return true;
      if (d === 'f') return false;
    }
  }
  throw new LivepatchError('EINVAL', `invalid boolean value '${value.trim()}'`);
}

export function stackOrder(core: Core, p: Patch): number {
  const i = core.active.indexOf(p);
  return i < 0 ? 0 : i + 1;
}

export function funcDir(f: { name: string; sympos: number }): string {
  return `${f.name},${f.sympos === 0 ? 1 : f.sympos}`;
}

/** The patches as listed: active ones in stack order, then registered but disabled ones. */
export function listedPatches(core: Core): Patch[] {
  return [...core.active, ...[...core.registered.values()].filter((p) => !core.active.includes(p))];
}

function objectPatched(obj: PatchObject): boolean {
  return obj.applied.length > 0;
}

export interface TreeFunc {
  name: string;
  sympos: number;
  nop: boolean;
}
export interface TreeObject {
  name: string;
  patched: boolean;
  loaded: boolean;
  funcs: TreeFunc[];
}
export interface TreePatch {
  name: string;
  enabled: boolean;
  transition: boolean;
  replace: boolean;
  forced: boolean;
  stack_order: number;
  objects: TreeObject[];
}

export function treeOf(core: Core, loaded: (id: string) => boolean): { patches: TreePatch[] } {
  return {
    patches: listedPatches(core).map((p) => ({
      name: p.name,
      enabled: p.enabled,
      transition: core.transitionPatch === p,
      replace: p.replace,
      forced: p.forced,
      stack_order: stackOrder(core, p),
      objects: p.objects.map((o) => ({
        name: o.name,
        patched: objectPatched(o),
        loaded: o.name === PROCESS_OBJECT || loaded(o.name),
        funcs: o.funcs.map((f) => ({
          name: f.name,
          sympos: f.sympos === 0 ? 1 : f.sympos,
          nop: f.spec === undefined,
        })),
      })),
    })),
  };
}

interface Resolved {
  patch: Patch;
  object?: PatchObject;
  func?: string;
  attr?: string;
}

const PATCH_ATTRS = ['enabled', 'transition', 'force', 'replace', 'stack_order'];

/** Resolves `<patch>[/<object>[/<func,sympos>]][/<attr>]`; object names may contain slashes. */
function resolvePath(core: Core, path: string): Resolved {
  const parts = path.replace(/^\/+|\/+$/g, '').split('/');
  const name = parts.shift() ?? '';
  const patch = core.registered.get(name);
  if (patch === undefined)
    throw new LivepatchError('ENOENT', `no such file or directory: '${path}'`, { path });
  if (parts.length === 0) return { patch };
  if (parts.length === 1 && PATCH_ATTRS.includes(parts[0]!)) return { patch, attr: parts[0]! };
  const rest = parts.join('/');
  // Longest object name first, so that `a/b.js` wins over `a` when both exist.
  const objects = [...patch.objects].sort((a, b) => b.name.length - a.name.length);
  for (const object of objects) {
    if (rest === object.name) return { patch, object };
    if (!rest.startsWith(`${object.name}/`)) continue;
    const tail = rest.slice(object.name.length + 1);
    if (tail === 'patched') return { patch, object, attr: 'patched' };
    const f = object.funcs.find((x) => funcDir(x) === tail);
    if (f !== undefined) return { patch, object, func: funcDir(f) };
  }
  throw new LivepatchError('ENOENT', `no such file or directory: '${path}'`, { path });
}

const bit = (b: boolean) => (b ? '1\n' : '0\n');

/** Reads an attribute ("1\n"); reading a directory lists its entries, one per line. */
export function sysfsRead(core: Core, path: string): string {
  const r = resolvePath(core, path);
  const p = r.patch;
  if (r.attr === undefined) {
    if (r.func !== undefined) return '';
    if (r.object !== undefined)
      return ['patched', ...r.object.funcs.map(funcDir)].map((s) => `${s}\n`).join('');
    return [...PATCH_ATTRS, ...p.objects.map((o) => o.name)].map((s) => `${s}\n`).join('');
  }
  switch (r.attr) {
    case 'enabled':
      return bit(p.enabled);
    case 'transition':
      return bit(core.transitionPatch === p);
    case 'replace':
      return bit(p.replace);
    case 'stack_order':
      return `${stackOrder(core, p) || core.active.length}\n`;
    case 'patched':
      return bit(objectPatched(r.object!));
    default:
      throw new LivepatchError('EPERM', `permission denied: '${path}' is not readable`, {
        path,
        errno: 'EACCES',
      });
  }
}

/** Writes an attribute with the kernel's rules; throws EINVAL/EBUSY, or EPERM for a read-only file. */
export function sysfsWrite(core: Core, path: string, value: string): void {
  const r = resolvePath(core, path);
  const p = r.patch;
  if (r.attr === 'enabled') {
    const want = parseBool(value);
    if (want === p.enabled)
      throw new LivepatchError('EINVAL', `patch '${p.name}' is already in the requested state`);
    if (want) core.enable(p);
    else core.disable(p);
    return;
  }
  if (r.attr === 'force') {
    if (!parseBool(value)) return;
    if (core.transitionPatch !== p)
      throw new LivepatchError('EINVAL', `patch '${p.name}' is not in transition`);
    core.force(p);
    return;
  }
  throw new LivepatchError('EPERM', `permission denied: '${path}' is not writable`, {
    path,
    errno: 'EACCES',
  });
}
