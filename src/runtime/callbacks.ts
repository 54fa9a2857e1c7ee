// Object callbacks with the kernel's gating (core.h): pre-patch may veto and arms post-unpatch; the others
// run if present, and a failure in them is logged, never thrown into the operation that runs them.
import type { RingLog } from './log.js';
import type { ObjInst, Patch, PatchObject } from './core.js';
import type { CallbackContext, StateRecord } from './spec.js';

type ModuleState = CallbackContext['moduleState'];

export class CallbackRunner {
  constructor(
    private readonly log: RingLog,
    private readonly prevState: (id: number) => StateRecord | undefined,
  ) {}

  private context(p: Patch, obj: PatchObject, oi: ObjInst, moduleState: ModuleState): CallbackContext {
    return {
      object: obj.name,
      patch: p.name,
      moduleState,
      bindings: oi.inst?.bindings ?? {},
      log: (line: string) => this.log.write(`${p.name}: ${line}`),
      getState: (id: number) => p.states.find((s) => s.id === id),
      getPrevState: (id: number) => this.prevState(id),
    };
  }

  /**
   * Runs pre-patch; returns the reason of a veto (it threw, or returned false or a non-zero number), else
   * undefined. Sets postUnpatchEnabled from the result, true when there is no pre-patch (core.h).
   */
  prePatch(p: Patch, obj: PatchObject, oi: ObjInst, state: ModuleState): string | undefined {
    const cb = obj.callbacks.prePatch;
    let veto: string | undefined;
    if (cb !== undefined) {
      try {
        const r = cb(this.context(p, obj, oi, state));
        if (r === false) veto = 'the callback returned false';
        else if (typeof r === 'number' && r !== 0) veto = `the callback returned ${r}`;
      } catch (e) {
        veto = (e as Error)?.message ?? String(e);
      }
    }
    oi.postUnpatchEnabled = veto === undefined;
    return veto;
  }

  /** Post-unpatch runs only if its pre-patch ran and succeeded, and only once. */
  postUnpatch(p: Patch, obj: PatchObject, oi: ObjInst, state: ModuleState): void {
    if (!oi.postUnpatchEnabled) return;
    this.run(p, obj, oi, 'postUnpatch', state);
    oi.postUnpatchEnabled = false;
  }

  run(
    p: Patch,
    obj: PatchObject,
    oi: ObjInst,
    which: 'postPatch' | 'preUnpatch' | 'postUnpatch',
    state: ModuleState,
  ): void {
    const cb = obj.callbacks[which];
    if (cb === undefined) return;
    try {
      cb(this.context(p, obj, oi, state));
    } catch (e) {
      // Only pre-patch can refuse; a failure here is reported and the operation goes on.
      this.log.write(
        `livepatch: '${p.name}': ${which} callback failed for object '${obj.name}': ${(e as Error)?.message ?? String(e)}`,
      );
    }
  }
}
