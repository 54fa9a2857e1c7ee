// `kernel load MODULE.ko`: every check first, then insmod (klp_enable_patch runs inside it), then follow the transition.
import { LivepatchError } from '../errors.js';
import {
  requireLivepatch,
  requireLivepatchModule,
  requireModulePermission,
  requireRelease,
  requireSignatureIfEnforced,
  runningRelease,
} from './checks.js';
import { note, type KernelContext, type KernelOutcome } from './context.js';
import { followTransition } from './follow.js';
import { insertModule } from './modcmd.js';
import { readModule } from './modinfo.js';
import { checkName, isModuleLoaded, readPatch, transitionPatch } from './sysfs.js';

export async function load(ctx: KernelContext, file: string): Promise<KernelOutcome> {
  requireLivepatch(ctx.paths);
  const mod = readModule(file);
  requireLivepatchModule(mod);
  requireRelease(mod, runningRelease(ctx.paths));
  requireSignatureIfEnforced(ctx.paths, mod);
  requireModulePermission(ctx.paths);
  const name = checkName(mod.name);
  if (readPatch(ctx.paths, name) !== null) {
    throw new LivepatchError('EEXIST', `patch '${name}' is already loaded`, { name });
  }
  if (isModuleLoaded(ctx.paths, name)) {
    throw new LivepatchError(
      'EEXIST',
      `module '${name}' is loaded but its patch was disabled; remove it first: livepatch kernel unload ${name}`,
      { name },
    );
  }
  // The kernel allows one transition at a time and would fail insmod with a bare EBUSY.
  const busy = transitionPatch(ctx.paths);
  if (busy !== null) {
    throw new LivepatchError(
      'EBUSY',
      `patch '${busy.name}' is in transition; wait for it or reverse it before loading '${name}'`,
      { name, transition: busy.name },
    );
  }
  note(ctx, `loading patch module: ${file}`);
  await insertModule(ctx.insmod, file, name);
  // klp_enable_patch creates the directory before insmod returns; without it the module did not register a patch.
  if (readPatch(ctx.paths, name) === null) {
    throw new LivepatchError(
      'EINVAL',
      `module '${name}' was inserted but no patch '${name}' appeared in sysfs (does its init call klp_enable_patch?)`,
      { name },
    );
  }
  const outcome = await followTransition(ctx, name, 'load', false);
  return { ...outcome, json: { name, file, ...outcome.json } };
}
