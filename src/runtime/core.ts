// The core of the model: registered patches, their objects and funcs, enable/disable/remove, callbacks,
// objects that load later and system states (the counterpart of kernel/livepatch/core.c and state.c).
import { LivepatchError } from '../errors.js';
import type { ModuleInstance } from './registry.js';
import type { RingLog } from './log.js';
import { CallbackRunner } from './callbacks.js';
import { pushEntry, removeEntry, resolveEntry, type Entry, type Func } from './patch.js';
import { getPrevState, isCompatible } from './state.js';
import {
  PROCESS_OBJECT,
  validatePatchSpec,
  type Callbacks,
  type PatchSpec,
  type StateRecord,
} from './spec.js';
import { PATCHED, UNPATCHED, type TaskTable, type Universe } from './tasks.js';

export interface PatchMeta {
  source?: string;
  file?: string;
  signedBy?: string;
  fixes?: string[];
}

/** A klp_object applied to one module instance (or to the process). */
export interface ObjInst {
  readonly inst: ModuleInstance | undefined;
  entries: Entry[];
  /** Set from pre-patch's result: post-unpatch runs only if pre-patch did (core.h). */
  postUnpatchEnabled: boolean;
}

export interface PatchObject {
  readonly name: string;
  readonly hash: string | undefined;
  readonly funcs: Func[];
  readonly callbacks: Callbacks;
  /** Created only to hold nops of an atomic replace. */
  readonly dynamic: boolean;
  /** Instances this object is applied to; empty while the module is not loaded. */
  applied: ObjInst[];
}

export interface Patch {
  readonly name: string;
  readonly spec: PatchSpec;
  readonly replace: boolean;
  objects: PatchObject[];
  readonly states: StateRecord[];
  /** Target state: true while enabled or while transitioning to enabled. */
  enabled: boolean;
  forced: boolean;
  readonly loadedAt: number;
  readonly meta: PatchMeta;
}

function isNop(f: Func): boolean {
  return f.spec === undefined;
}

export class Core {
  /** Every registered patch, by name. */
  readonly registered = new Map<string, Patch>();
  /** klp_patches: the patches enabled or in transition, oldest first (stack_order = index + 1). */
  readonly active: Patch[] = [];
  transitionPatch: Patch | undefined;
  target: Universe = PATCHED;
  transitionStartedAt = 0;
  private readonly waiters = new Set<() => void>();
  private readonly cb: CallbackRunner;
  private completionScheduled = false;

  constructor(
    readonly log: RingLog,
    readonly tasks: TaskTable,
    readonly instances: () => readonly ModuleInstance[],
  ) {
    tasks.onOldTaskEnd = () => this.scheduleTryComplete();
    this.cb = new CallbackRunner(log, (id) => this.getPrevState(id));
  }

  // --- registration and enabling -----------------------------------------------------------------

  /** Registers and enables a patch; on any error nothing stays changed. */
  load(input: unknown, meta: PatchMeta): void {
    const spec = validatePatchSpec(input);
    if (this.registered.has(spec.name))
      throw new LivepatchError('EEXIST', `patch '${spec.name}' is already loaded`, { patch: spec.name });
    const patch: Patch = {
      name: spec.name,
      spec,
      replace: spec.replace === true,
      objects: spec.objects.map((o) => ({
        name: o.module ?? PROCESS_OBJECT,
        hash: o.hash,
        funcs: o.funcs.map((f) => ({ name: f.name, sympos: f.sympos ?? 0, spec: f, transition: false })),
        callbacks: o.callbacks ?? {},
        dynamic: false,
        applied: [],
      })),
      states: (spec.states ?? []).map((s) => ({ id: s.id, version: s.version, data: undefined })),
      enabled: false,
      forced: false,
      loadedAt: Date.now(),
      meta: { ...meta },
    };
    this.registered.set(patch.name, patch);
    try {
      this.enable(patch);
    } catch (e) {
      this.registered.delete(patch.name);
      throw e;
    }
  }

  /** Enables a registered, disabled patch (klp_enable_patch from step 6 on). */
  enable(p: Patch): void {
    if (this.transitionPatch !== undefined) {
      if (this.transitionPatch === p) {
        if (p.enabled)
          throw new LivepatchError('EINVAL', `patch '${p.name}' is already in the requested state`);
        this.reverseTransition();
        return;
      }
      throw new LivepatchError(
        'EBUSY',
        `patch '${this.transitionPatch.name}' is in transition; wait, or reverse it first`,
        {
          transition: this.transitionPatch.name,
        },
      );
    }
    if (p.enabled) throw new LivepatchError('EINVAL', `patch '${p.name}' is already enabled`);
    if (!isCompatible(this.active, p)) {
      this.log.write(
        `livepatch: Livepatch patch (${p.name}) is not compatible with the already installed livepatches.`,
      );
      throw new LivepatchError(
        'EINVAL',
        `patch '${p.name}' is not compatible with the already installed livepatches (system states)`,
      );
    }
    if (p.replace) this.addNops(p);
    // Resolve every func of every loaded object before anything changes: a missing function, a hash
    // mismatch or a failing factory leaves the process exactly as it was.
    let plan: { obj: PatchObject; inst: ModuleInstance | undefined; entries: Entry[] }[];
    try {
      plan = p.objects.flatMap((obj) =>
        this.instancesFor(p, obj).map((inst) => ({ obj, inst, entries: this.resolve(obj, inst) })),
      );
    } catch (e) {
      this.removeNops(p);
      if (e instanceof LivepatchError) this.log.write(`livepatch: ${e.message}`);
      throw e;
    }
    this.active.push(p);
    this.log.write(`livepatch: enabling patch '${p.name}'`);
    this.initTransition(p, PATCHED);
    for (const { obj, inst, entries } of plan) {
      const oi: ObjInst = { inst, entries, postUnpatchEnabled: false };
      const veto = this.cb.prePatch(p, obj, oi, 'live');
      if (veto !== undefined) {
        this.log.write(`livepatch: pre-patch callback failed for object '${obj.name}'`);
        this.log.write(`livepatch: failed to enable patch '${p.name}'`);
        this.cancelTransition();
        throw new LivepatchError(
          'EVETO',
          `pre-patch callback failed for object '${obj.name}' of patch '${p.name}': ${veto}`,
          {
            patch: p.name,
            object: obj.name,
          },
        );
      }
      for (const e of entries) pushEntry(e);
      obj.applied.push(oi);
    }
    this.startTransition();
    p.enabled = true;
    this.tryCompleteTransition();
  }

  /** Instances an object applies to now: the process, or the loaded instances with a matching hash. */
  private instancesFor(p: Patch, obj: PatchObject): (ModuleInstance | undefined)[] {
    if (obj.name === PROCESS_OBJECT) return [undefined];
    const loaded = this.instances().filter((i) => i.id === obj.name);
    if (obj.hash === undefined) return loaded;
    const matching = loaded.filter((i) => i.hash === obj.hash);
    if (loaded.length > 0 && matching.length === 0)
      throw new LivepatchError(
        'EHASH',
        `module '${obj.name}' does not match patch '${p.name}': loaded hash ${loaded[0]!.hash}, patch built against ${obj.hash}`,
        { module: obj.name, patch: p.name, expected: obj.hash, found: loaded.map((i) => i.hash) },
      );
    return matching;
  }

  private resolve(obj: PatchObject, inst: ModuleInstance | undefined): Entry[] {
    if (inst === undefined) return [];
    return obj.funcs.map((f) => resolveEntry(f, inst, this.tasks));
  }

  // --- atomic replace ----------------------------------------------------------------------------

  /** klp_add_nops: a nop for every function of an active patch that the replacing patch does not name. */
  private addNops(p: Patch): void {
    for (const old of this.active) {
      for (const oldObj of old.objects) {
        let obj = p.objects.find((o) => o.name === oldObj.name);
        for (const f of oldObj.funcs) {
          if (obj?.funcs.some((g) => g.name === f.name && (g.sympos || 1) === (f.sympos || 1))) continue;
          if (obj === undefined) {
            obj = {
              name: oldObj.name,
              hash: oldObj.hash,
              funcs: [],
              callbacks: {},
              dynamic: true,
              applied: [],
            };
            p.objects.push(obj);
          }
          obj.funcs.push({ name: f.name, sympos: f.sympos, spec: undefined, transition: false });
        }
      }
    }
  }

  /** Drops the nops and dynamic objects again (their entries must be off the stacks already). */
  private removeNops(p: Patch): void {
    p.objects = p.objects.filter((o) => !o.dynamic);
    for (const o of p.objects) {
      const nops = new Set(o.funcs.filter(isNop));
      if (nops.size === 0) continue;
      (o as { funcs: Func[] }).funcs = o.funcs.filter((f) => !nops.has(f));
      for (const oi of o.applied) oi.entries = oi.entries.filter((e) => !nops.has(e.func));
    }
  }

  // --- disabling and removal ---------------------------------------------------------------------

  /** Starts disabling; reverses the transition when the patch is the one in transition. */
  disable(p: Patch): void {
    if (this.transitionPatch === p) {
      if (!p.enabled)
        throw new LivepatchError('EINVAL', `patch '${p.name}' is already in the requested state`);
      this.reverseTransition();
      return;
    }
    if (this.transitionPatch !== undefined)
      throw new LivepatchError(
        'EBUSY',
        `patch '${this.transitionPatch.name}' is in transition; wait, or reverse it first`,
        {
          transition: this.transitionPatch.name,
        },
      );
    if (!p.enabled) throw new LivepatchError('EINVAL', `patch '${p.name}' is already disabled`);
    this.initTransition(p, UNPATCHED);
    for (const obj of p.objects) for (const oi of obj.applied) this.cb.run(p, obj, oi, 'preUnpatch', 'live');
    this.startTransition();
    p.enabled = false;
    this.tryCompleteTransition();
  }

  /** Unregisters a disabled patch. */
  remove(p: Patch): void {
    if (p.enabled || this.transitionPatch === p)
      throw new LivepatchError('EBUSY', `patch '${p.name}' is enabled; disable it before removing it`, {
        patch: p.name,
      });
    if (p.forced)
      throw new LivepatchError(
        'EPERM',
        `patch '${p.name}' took part in a forced transition and cannot be removed`,
        { patch: p.name },
      );
    this.registered.delete(p.name);
  }

  // --- transitions (transition.c's verbs) --------------------------------------------------------

  private initTransition(p: Patch, target: Universe): void {
    this.log.write(
      `livepatch: '${p.name}': initializing ${target === PATCHED ? 'patching' : 'unpatching'} transition`,
    );
    this.transitionPatch = p;
    this.target = target;
    this.transitionStartedAt = Date.now();
    this.tasks.beginTransition(target);
    // Every func is marked before any entry becomes visible on a stack (livepatch.h ordering).
    for (const obj of p.objects) for (const f of obj.funcs) f.transition = true;
  }

  private startTransition(): void {
    const p = this.transitionPatch!;
    this.log.write(
      `livepatch: '${p.name}': starting ${this.target === PATCHED ? 'patching' : 'unpatching'} transition`,
    );
  }

  private reverseTransition(): void {
    const p = this.transitionPatch!;
    const from = this.target === PATCHED ? 'patching' : 'unpatching';
    const to = this.target === PATCHED ? 'unpatching' : 'patching';
    this.log.write(`livepatch: '${p.name}': reversing transition from ${from} to ${to}`);
    this.tasks.reverse();
    p.enabled = !p.enabled;
    this.target = this.target === PATCHED ? UNPATCHED : PATCHED;
    this.startTransition();
    this.tryCompleteTransition();
  }

  private cancelTransition(): void {
    const p = this.transitionPatch!;
    this.log.write(`livepatch: '${p.name}': canceling patching transition, going to unpatch`);
    this.target = UNPATCHED;
    this.tasks.reverse();
    this.tasks.forceAll();
    this.completeTransition();
    this.active.splice(this.active.indexOf(p), 1);
    this.removeNops(p);
  }

  /** Completes the transition if no task is left in the old universe; "not yet" is `false`. */
  tryCompleteTransition(): boolean {
    if (this.transitionPatch === undefined) return true;
    if (this.tasks.hasPending()) return false;
    const p = this.transitionPatch;
    this.completeTransition();
    if (!p.enabled) {
      this.active.splice(this.active.indexOf(p), 1);
      if (p.replace) this.removeNops(p);
    } else if (p.replace) {
      // The replaced patches are retired without their callbacks and leave the tree (klp_free_replaced_patches).
      for (const q of this.active.filter((q) => q !== p)) {
        this.active.splice(this.active.indexOf(q), 1);
        this.registered.delete(q.name);
      }
    }
    for (const w of [...this.waiters]) w();
    return true;
  }

  private completeTransition(): void {
    const p = this.transitionPatch!;
    const patching = this.target === PATCHED;
    this.log.write(`livepatch: '${p.name}': completing ${patching ? 'patching' : 'unpatching'} transition`);
    if (p.replace && patching) {
      for (const q of this.active) {
        if (q === p) continue;
        q.enabled = false;
        for (const obj of q.objects) this.unpatchObject(obj);
      }
      for (const obj of p.objects)
        for (const oi of obj.applied) for (const e of oi.entries) if (e.fn === undefined) removeEntry(e);
      this.removeNops(p);
    }
    if (!patching)
      for (const obj of p.objects) for (const oi of obj.applied) for (const e of oi.entries) removeEntry(e);
    for (const obj of p.objects) for (const f of obj.funcs) f.transition = false;
    this.tasks.endTransition();
    for (const obj of p.objects) {
      for (const oi of obj.applied) {
        if (patching) this.cb.run(p, obj, oi, 'postPatch', 'live');
        else this.cb.postUnpatch(p, obj, oi, 'live');
      }
      if (!patching) obj.applied = [];
    }
    this.log.write(`livepatch: '${p.name}': ${patching ? 'patching' : 'unpatching'} complete`);
    this.transitionPatch = undefined;
  }

  /** klp_force_transition: moves every remaining task to the target without any check. */
  force(p: Patch): void {
    if (this.transitionPatch !== p)
      throw new LivepatchError('EINVAL', `patch '${p.name}' is not in transition`);
    this.log.write('livepatch: forcing remaining tasks to the patched state');
    this.tasks.forceAll();
    p.forced = true;
    if (p.replace) for (const q of this.active) if (q !== p) q.forced = true;
    this.tryCompleteTransition();
  }

  private scheduleTryComplete(): void {
    if (this.completionScheduled) return;
    this.completionScheduled = true;
    // Out of the ending task's own stack (a response's 'close' listener), as the kernel's retry work is.
    setImmediate(() => {
      this.completionScheduled = false;
      this.tryCompleteTransition();
    });
  }

  /** Resolves true once no transition runs, false after timeoutMs. */
  waitForTransition(timeoutMs: number): Promise<boolean> {
    if (this.transitionPatch === undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(onDone);
        resolve(ok);
      };
      const onDone = () => done(true);
      const timer = setTimeout(() => done(this.transitionPatch === undefined), Math.max(0, timeoutMs));
      // Waiting for a transition is no reason to keep a thread alive: its old tasks do that while they run.
      timer.unref();
      this.waiters.add(onDone);
    });
  }

  // --- objects that load later (klp_module_coming) ----------------------------------------------

  /** Applies every active patch with an object for this module to the new instance; throws to refuse it. */
  moduleComing(inst: ModuleInstance): void {
    const done: { p: Patch; obj: PatchObject; oi: ObjInst }[] = [];
    for (const p of [...this.active]) {
      const obj = p.objects.find((o) => o.name === inst.id);
      if (obj === undefined) continue;
      if (obj.hash !== undefined && obj.hash !== inst.hash) {
        this.log.write(
          `livepatch: patch '${p.name}' not applied to loading module '${inst.id}' (hash ${inst.hash}, patch built against ${obj.hash})`,
        );
        continue;
      }
      let failure: string | undefined;
      let entries: Entry[] = [];
      try {
        entries = this.resolve(obj, inst);
      } catch (e) {
        this.log.write(
          `livepatch: failed to initialize patch '${p.name}' for module '${inst.id}' (${(e as Error).message})`,
        );
        failure = (e as Error).message;
      }
      const oi: ObjInst = { inst, entries, postUnpatchEnabled: false };
      if (failure === undefined) {
        this.log.write(`livepatch: applying patch '${p.name}' to loading module '${inst.id}'`);
        const veto = this.cb.prePatch(p, obj, oi, 'coming');
        if (veto !== undefined) {
          this.log.write(`livepatch: pre-patch callback failed for object '${inst.id}'`);
          failure = veto;
        }
      }
      if (failure !== undefined) {
        this.log.write(
          `livepatch: patch '${p.name}' failed for module '${inst.id}', refusing to load module '${inst.id}'`,
        );
        for (const d of done.reverse()) this.revertInstance(d.p, d.obj, d.oi);
        throw new LivepatchError('EVETO', `patch '${p.name}' refused module '${inst.id}': ${failure}`, {
          patch: p.name,
          module: inst.id,
        });
      }
      for (const e of entries) pushEntry(e);
      obj.applied.push(oi);
      done.push({ p, obj, oi });
      if (p !== this.transitionPatch) this.cb.run(p, obj, oi, 'postPatch', 'coming');
    }
  }

  /**
   * klp_module_going, for an instance the app no longer holds (a file evaluated again, its old copy collected): the
   * patches applied to it let go of it. No callback runs: nothing of the instance is left to run it on.
   */
  moduleGoing(inst: ModuleInstance): void {
    for (const p of this.registered.values()) {
      for (const obj of p.objects) {
        const oi = obj.applied.find((x) => x.inst === inst);
        if (oi === undefined) continue;
        for (const e of oi.entries) removeEntry(e);
        obj.applied = obj.applied.filter((x) => x !== oi);
        this.log.write(`livepatch: reverting patch '${p.name}' on unloading module '${inst.id}'`);
      }
    }
  }

  /** klp_cleanup_module_patches_limited for one instance whose load is refused. */
  private revertInstance(p: Patch, obj: PatchObject, oi: ObjInst): void {
    if (p !== this.transitionPatch) this.cb.run(p, obj, oi, 'preUnpatch', 'coming');
    this.log.write(`livepatch: reverting patch '${p.name}' on unloading module '${obj.name}'`);
    for (const e of oi.entries) removeEntry(e);
    obj.applied = obj.applied.filter((x) => x !== oi);
    this.cb.postUnpatch(p, obj, oi, 'coming');
  }

  private unpatchObject(obj: PatchObject): void {
    for (const oi of obj.applied) for (const e of oi.entries) removeEntry(e);
    obj.applied = [];
  }

  /** klp_get_prev_state, for callbacks (state.ts). */
  getPrevState(id: number): StateRecord | undefined {
    return getPrevState(this.active, this.transitionPatch, id);
  }
}
