// System states (kernel/livepatch/state.c): the compatibility rule for cumulative patches and the lookup
// of the state an older patch set up.
import type { Patch } from './core.js';
import type { StateRecord } from './spec.js';

/** klp_is_patch_compatible: a replace patch must carry every existing state; versions never go down. */
export function isCompatible(active: readonly Patch[], p: Patch): boolean {
  for (const q of active) {
    if (q === p) continue;
    for (const old of q.states) {
      const mine = p.states.find((s) => s.id === old.id);
      if (mine === undefined) {
        if (p.replace) return false;
      } else if (mine.version < old.version) return false;
    }
  }
  return true;
}

/**
 * klp_get_prev_state: the newest state with that id among the active patches older than the transition
 * patch; undefined outside a transition (where the kernel WARNs).
 */
export function getPrevState(
  active: readonly Patch[],
  transitionPatch: Patch | undefined,
  id: number,
): StateRecord | undefined {
  if (transitionPatch === undefined) return undefined;
  let found: StateRecord | undefined;
  for (const q of active) {
    if (q === transitionPatch) break;
    found = q.states.find((s) => s.id === id) ?? found;
  }
  return found;
}
