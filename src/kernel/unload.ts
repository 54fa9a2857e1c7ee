// `kernel unload NAME`: disable the patch if it is still in the tree, wait for the kernel to free it, then rmmod.
import { LivepatchError } from '../errors.js';
import { requireLivepatch, requireModulePermission } from './checks.js';
import { note, type KernelContext, type KernelOutcome } from './context.js';
import { followTransition } from './follow.js';
import { removeModule } from './modcmd.js';
import {
  checkName,
  isModuleLoaded,
  moduleRefcnt,
  readPatch,
  transitionPatch,
  writePatchAttr,
} from './sysfs.js';

export async function unload(ctx: KernelContext, operand: string): Promise<KernelOutcome> {
  requireLivepatch(ctx.paths);
  requireModulePermission(ctx.paths);
  const name = checkName(operand);
  const p = readPatch(ctx.paths, name);
  if (p === null && !isModuleLoaded(ctx.paths, name)) {
    throw new LivepatchError('ENOENT', `no such patch or module '${name}'`, { name });
  }
  const text: string[] = [];
  const json: Record<string, unknown> = { name };
  if (p !== null) {
    if (p.enabled) {
      const busy = transitionPatch(ctx.paths);
      if (busy !== null && busy.name !== name) {
        throw new LivepatchError(
          'EBUSY',
          `patch '${busy.name}' is in transition; wait for it before unloading '${name}'`,
          {
            name,
            transition: busy.name,
          },
        );
      }
      note(
        ctx,
        p.transition
          ? `'${name}': reversing transition from patching to unpatching`
          : `disabling patch '${name}'`,
      );
      writePatchAttr(ctx.paths, name, 'enabled', '0');
    }
    const outcome = await followTransition(ctx, name, 'disable', true);
    text.push(...outcome.text);
    Object.assign(json, outcome.json);
    if (outcome.code !== 0) return { ...outcome, json, text };
  }
  // A forced patch keeps its module reference for good (transition.c): rmmod would only say "in use".
  const refcnt = moduleRefcnt(ctx.paths, name);
  if (refcnt !== null && refcnt > 0) {
    throw new LivepatchError(
      'EBUSY',
      `module '${name}' is still in use (refcnt ${refcnt}); a patch whose transition was forced can never be removed: it goes away at the next reboot`,
      { name, refcnt },
    );
  }
  if (isModuleLoaded(ctx.paths, name)) {
    await removeModule(ctx.rmmod, name);
    text.push(`module '${name}' removed`);
  }
  return { code: 0, json: { ...json, removed: true }, text };
}
