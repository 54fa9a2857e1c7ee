// The package's main export, for patch authors: defineLivepatch, task, shadow and the types of a patch.
// Nothing here needs the runtime singleton: a patch module may import a different copy of this package.
import { LivepatchError } from './errors.js';
import { REGISTRY_KEY } from './runtime/abi.js';
import { PATCH_MARK, validatePatchSpec, type PatchSpec } from './runtime/spec.js';

export { shadow } from './runtime/shadow.js';
export type { ShadowApi, ShadowCtor, ShadowDtor, ShadowId } from './runtime/shadow.js';
export type {
  PatchSpec,
  ObjectSpec,
  FuncSpec,
  StateSpec,
  Callbacks,
  CallbackContext,
  ReplacementContext,
  StateRecord,
} from './runtime/spec.js';
export { LivepatchError, isLivepatchError } from './errors.js';
export type { LivepatchErrorCode } from './errors.js';

/** A validated, frozen patch: the default export of a patch module. */
export type Livepatch = Readonly<PatchSpec> & { readonly [PATCH_MARK]: true };

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * Checks a patch and returns it frozen and marked, for `export default defineLivepatch({...})`.
 * Throws LivepatchError EINVAL naming the exact field, e.g. `objects[0].funcs[1].name: expected a non-empty string`.
 */
export function defineLivepatch(spec: PatchSpec): Livepatch {
  const checked = validatePatchSpec(spec);
  // Functions are kept as given (freezing them would break replacements that keep state on themselves).
  for (const o of checked.objects) {
    for (const f of o.funcs) Object.freeze(f);
    if (o.callbacks) Object.freeze(o.callbacks);
    Object.freeze(o.funcs);
    Object.freeze(o);
  }
  deepFreeze(checked.states);
  Object.freeze(checked.objects);
  Object.defineProperty(checked, PATCH_MARK, { value: true, enumerable: false });
  return Object.freeze(checked) as Livepatch;
}

/** True for a value made by defineLivepatch (by any copy of the package). */
export function isLivepatch(v: unknown): v is Livepatch {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[PATCH_MARK] === true;
}

interface RuntimeLike {
  runTask<T>(fn: () => T, label?: string): T;
}

/**
 * Runs fn as a task: during a transition it runs in one universe for its whole life (all old or all new
 * code of a patch), and the transition waits for it. The task ends when fn returns or its promise settles.
 * Without a livepatch runtime in the process it simply calls fn.
 */
export function task<T>(fn: () => T, label?: string): T {
  if (typeof fn !== 'function') throw new LivepatchError('EINVAL', 'task: expected a function');
  const registry = (globalThis as unknown as Record<symbol, { runtime?: RuntimeLike } | undefined>)[
    REGISTRY_KEY
  ];
  const runtime = registry?.runtime;
  return runtime !== undefined ? runtime.runTask(fn, label ?? (fn.name || 'task')) : fn();
}
