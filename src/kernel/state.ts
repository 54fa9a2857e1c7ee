// `kernel enable|disable|force NAME`: writes to the patch's sysfs attributes, checked against the kernel's rules first.
import { LivepatchError } from '../errors.js';
import { requireLivepatch } from './checks.js';
import { note, type KernelContext, type KernelOutcome } from './context.js';
import { followTransition } from './follow.js';
import {
  checkName,
  isModuleLoaded,
  readPatch,
  readPatches,
  transitionPatch,
  writePatchAttr,
  type KernelPatch,
} from './sysfs.js';
import { pendingTasks } from './tasks.js';

/** The patch, or the precise reason there is none: never loaded, or disabled and freed (its module may remain). */
export function requirePatch(ctx: KernelContext, name: string): KernelPatch {
  const patch = readPatch(ctx.paths, name);
  if (patch !== null) return patch;
  if (isModuleLoaded(ctx.paths, name)) {
    throw new LivepatchError(
      'ENOENT',
      `patch '${name}' was disabled (or replaced) and freed; its module is still loaded: livepatch kernel unload ${name}`,
      { name, moduleLoaded: true },
    );
  }
  throw new LivepatchError('ENOENT', `no such patch '${name}'`, { name });
}

/** Only one transition at a time: say which one is running instead of passing on the kernel's bare EBUSY. */
function requireNoOtherTransition(ctx: KernelContext, name: string): void {
  const busy = transitionPatch(ctx.paths);
  if (busy !== null && busy.name !== name) {
    throw new LivepatchError(
      'EBUSY',
      `patch '${busy.name}' is in transition; wait for it before changing '${name}'`,
      {
        name,
        transition: busy.name,
      },
    );
  }
}

export async function enable(ctx: KernelContext, operand: string): Promise<KernelOutcome> {
  requireLivepatch(ctx.paths);
  const name = checkName(operand);
  const patch = readPatch(ctx.paths, name);
  if (patch === null && isModuleLoaded(ctx.paths, name)) {
    // Since v5.1 (atomic replace) a disabled patch is freed at once and its sysfs directory goes with it.
    throw new LivepatchError(
      'EINVAL',
      `patch '${name}' was disabled and cannot be re-enabled: since Linux 5.1 a disabled patch is freed. ` +
        `To apply it again: livepatch kernel unload ${name}, then livepatch kernel load ${name}.ko`,
      { name },
    );
  }
  const p = patch ?? requirePatch(ctx, name);
  if (p.enabled) {
    throw new LivepatchError(
      'EINVAL',
      `patch '${name}' is already ${p.transition ? 'being enabled' : 'enabled'}`,
      { name },
    );
  }
  if (!p.transition) {
    throw new LivepatchError('EINVAL', `patch '${name}' was disabled and cannot be re-enabled (Linux 5.1+)`, {
      name,
    });
  }
  // Disabled and in transition: writing 1 reverses the unpatching transition.
  note(ctx, `'${name}': reversing transition from unpatching to patching`);
  writePatchAttr(ctx.paths, name, 'enabled', '1');
  return followTransition(ctx, name, 'enable', false);
}

export async function disable(ctx: KernelContext, operand: string): Promise<KernelOutcome> {
  requireLivepatch(ctx.paths);
  const name = checkName(operand);
  const p = requirePatch(ctx, name);
  if (!p.enabled) throw new LivepatchError('EINVAL', `patch '${name}' is already being disabled`, { name });
  requireNoOtherTransition(ctx, name);
  if (p.transition) note(ctx, `'${name}': reversing transition from patching to unpatching`);
  writePatchAttr(ctx.paths, name, 'enabled', '0');
  return followTransition(ctx, name, 'disable', true);
}

/**
 * The kernel's rules for `force` (transition.c, klp_force_transition): forcing an unpatching transition marks
 * that patch forced; forcing a replace patch's patching transition marks every patch it replaces. A forced
 * patch never drops its module reference, so those modules can never be removed.
 */
export function modulesPinnedByForce(patches: KernelPatch[], p: KernelPatch): string[] {
  if (!p.enabled) return [p.name];
  if (p.replace) return patches.filter((q) => q.name !== p.name).map((q) => q.name);
  return [];
}

export async function force(ctx: KernelContext, operand: string): Promise<KernelOutcome> {
  requireLivepatch(ctx.paths);
  const name = checkName(operand);
  const p = requirePatch(ctx, name);
  if (!p.transition) {
    throw new LivepatchError('EINVAL', `patch '${name}' is not in transition; there is nothing to force`, {
      name,
    });
  }
  const target = p.enabled ? 1 : 0;
  const tasks = pendingTasks(ctx.paths, target);
  const pinned = modulesPinnedByForce(readPatches(ctx.paths), p);
  const warnings = [
    `warning: forcing remaining tasks to the ${p.enabled ? 'patched' : 'unpatched'} state: ` +
      `${tasks.length} task(s) switch without the stack check and may mix old and new code`,
    pinned.length > 0
      ? `warning: module(s) ${pinned.map((n) => `'${n}'`).join(', ')} can never be removed after this (a forced patch keeps its module reference); plan a reboot`
      : `warning: the kernel does not pin '${name}' for this force, but consistency is no longer guaranteed; plan a reboot`,
  ];
  for (const w of warnings) note(ctx, w);
  writePatchAttr(ctx.paths, name, 'force', '1');
  const outcome = await followTransition(ctx, name, 'force', !p.enabled);
  // The warnings went to stderr already, where they are seen even under --json.
  return { ...outcome, json: { ...outcome.json, forced: pinned, warnings } };
}
