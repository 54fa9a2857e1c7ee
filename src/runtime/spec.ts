// The patch author's data model (klp_patch/klp_object/klp_func/klp_state) and its validation, shared by
// defineLivepatch and the runtime, which re-validates whatever it is given (a patch may come from another copy).
import { LivepatchError } from '../errors.js';

/** What a factory-form replacement receives, once per module instance (docs/internals/abi.md §5). */
export interface ReplacementContext {
  /** The module instance's private bindings (its top-level variables, functions, imports). */
  readonly bindings: Record<string, unknown>;
  /** Runs the original code of the patched function: `ctx.original.apply(this, arguments)`. */
  readonly original: (...args: any[]) => any;
  /** The enclosing function's captured variables for the current call; read it before any `await`. */
  scope(): Record<string, unknown>;
  /** Module id and file of the instance. */
  readonly module: string;
  readonly file: string;
}

export type AnyFunction = (...args: any[]) => any;

export interface FuncSpec {
  /** Symbol name as `livepatch symbols` shows it (DESIGN.md §6). */
  name: string;
  /** 1-based position among equal names in the module; 0 or absent: the name must be unique. */
  sympos?: number;
  replacement?: AnyFunction;
  factory?: (ctx: ReplacementContext) => AnyFunction;
}

/** What object callbacks receive. */
export interface CallbackContext {
  /** Object name: the module id, or 'process' for the process object. */
  readonly object: string;
  readonly patch: string;
  /** 'live' when the object was already loaded, 'coming' when it is loading now. */
  readonly moduleState: 'live' | 'coming';
  /** The module instance's private bindings (empty for the process object). */
  readonly bindings: Record<string, unknown>;
  /** Appends `<patch>: <line>` to the livepatch log (the selftests' printk). */
  log(line: string): void;
  /** This patch's state record with that id (klp_get_state), or undefined. */
  getState(id: number): StateRecord | undefined;
  /** The newest state with that id among older active patches (klp_get_prev_state); only during a transition. */
  getPrevState(id: number): StateRecord | undefined;
}

export interface StateRecord {
  readonly id: number;
  readonly version: number;
  /** Free-form data owned by the patch and its callbacks. */
  data: unknown;
}

export interface Callbacks {
  /** May veto by throwing or returning false: the enable (or the module's load) fails and nothing stays changed. */
  prePatch?: (ctx: CallbackContext) => unknown;
  postPatch?: (ctx: CallbackContext) => void;
  preUnpatch?: (ctx: CallbackContext) => void;
  postUnpatch?: (ctx: CallbackContext) => void;
}

export interface ObjectSpec {
  /** Module id (`pkg/path/file.js`); absent or 'process' for the always-loaded process object (callbacks only). */
  module?: string;
  /** sha256 hex of the module file the patch was built against. */
  hash?: string;
  funcs: FuncSpec[];
  callbacks?: Callbacks;
}

export interface StateSpec {
  id: number;
  version: number;
}

export interface PatchSpec {
  name: string;
  /** One line for people: what the patch fixes. Shown by `livepatch info`. */
  description?: string;
  /** Advisory, CVE or ticket ids the patch fixes. Shown by `livepatch info` and `status`. */
  fixes?: string[];
  replace?: boolean;
  objects: ObjectSpec[];
  states?: StateSpec[];
}

export const PATCH_MARK: unique symbol = Symbol.for('livepatch.patch') as never;
export const PROCESS_OBJECT = 'process';

const NAME_RE = /^[a-z0-9_-]{1,64}$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const CALLBACKS = ['prePatch', 'postPatch', 'preUnpatch', 'postUnpatch'] as const;

function fail(field: string, expected: string): never {
  throw new LivepatchError('EINVAL', `${field}: ${expected}`, { field });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(v: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k))
      fail(field === '' ? k : `${field}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
  }
}

/**
 * Checks a patch spec and returns a normalised deep copy (sympos 0 → 0, replace → boolean, module absent →
 * 'process'). Throws LivepatchError EINVAL naming the exact field, e.g. `objects[0].funcs[1].name: …`.
 */
export function validatePatchSpec(input: unknown): PatchSpec {
  if (!isPlainObject(input)) fail('patch', 'expected an object');
  checkKeys(input, '', ['name', 'description', 'fixes', 'replace', 'objects', 'states']);
  const { name, description, fixes, replace, objects, states } = input;
  if (typeof name !== 'string' || !NAME_RE.test(name)) fail('name', 'expected 1-64 characters of [a-z0-9_-]');
  if (description !== undefined && typeof description !== 'string') fail('description', 'expected a string');
  if (fixes !== undefined && !(Array.isArray(fixes) && fixes.every((f) => typeof f === 'string' && f !== '')))
    fail('fixes', 'expected an array of non-empty strings');
  if (replace !== undefined && typeof replace !== 'boolean') fail('replace', 'expected a boolean');
  if (!Array.isArray(objects)) fail('objects', 'expected an array');
  const seenObjects = new Set<string>();
  const outObjects: ObjectSpec[] = objects.map((o: unknown, i) => {
    const at = `objects[${i}]`;
    if (!isPlainObject(o)) fail(at, 'expected an object');
    checkKeys(o, at, ['module', 'hash', 'funcs', 'callbacks']);
    const module = o.module ?? PROCESS_OBJECT;
    if (typeof module !== 'string' || module === '' || module.length > 1024)
      fail(`${at}.module`, 'expected a non-empty module id');
    if (seenObjects.has(module)) fail(`${at}.module`, `duplicate object '${module}'`);
    seenObjects.add(module);
    if (o.hash !== undefined && (typeof o.hash !== 'string' || !HASH_RE.test(o.hash)))
      fail(`${at}.hash`, 'expected a sha256 hex string (64 lowercase hex digits)');
    if (!Array.isArray(o.funcs)) fail(`${at}.funcs`, 'expected an array');
    if (module === PROCESS_OBJECT && o.funcs.length > 0)
      fail(`${at}.funcs`, `the '${PROCESS_OBJECT}' object has no functions; name a module`);
    const seenFuncs = new Set<string>();
    const funcs: FuncSpec[] = o.funcs.map((f: unknown, j) => {
      const fat = `${at}.funcs[${j}]`;
      if (!isPlainObject(f)) fail(fat, 'expected an object');
      checkKeys(f, fat, ['name', 'sympos', 'replacement', 'factory']);
      if (typeof f.name !== 'string' || f.name === '') fail(`${fat}.name`, 'expected a non-empty string');
      if (f.name.length >= 512) fail(`${fat}.name`, 'expected fewer than 512 characters');
      const sympos = f.sympos ?? 0;
      if (typeof sympos !== 'number' || !Number.isInteger(sympos) || sympos < 0)
        fail(`${fat}.sympos`, 'expected a non-negative integer');
      const key = `${f.name},${sympos === 0 ? 1 : sympos}`;
      if (seenFuncs.has(key)) fail(`${fat}.name`, `duplicate function '${key}'`);
      seenFuncs.add(key);
      const hasR = f.replacement !== undefined;
      const hasF = f.factory !== undefined;
      if (hasR === hasF) fail(fat, 'expected exactly one of replacement or factory');
      if (hasR && typeof f.replacement !== 'function') fail(`${fat}.replacement`, 'expected a function');
      if (hasF && typeof f.factory !== 'function') fail(`${fat}.factory`, 'expected a function');
      const out: FuncSpec = { name: f.name, sympos };
      if (hasR) out.replacement = f.replacement as AnyFunction;
      else out.factory = f.factory as FuncSpec['factory'];
      return out;
    });
    const obj: ObjectSpec = { module, funcs };
    if (o.hash !== undefined) obj.hash = o.hash as string;
    if (o.callbacks !== undefined) {
      if (!isPlainObject(o.callbacks)) fail(`${at}.callbacks`, 'expected an object');
      checkKeys(o.callbacks, `${at}.callbacks`, CALLBACKS);
      const cbs: Callbacks = {};
      for (const k of CALLBACKS) {
        const cb = o.callbacks[k];
        if (cb === undefined) continue;
        if (typeof cb !== 'function') fail(`${at}.callbacks.${k}`, 'expected a function');
        cbs[k] = cb as never;
      }
      obj.callbacks = cbs;
    }
    return obj;
  });
  const outStates: StateSpec[] = [];
  if (states !== undefined) {
    if (!Array.isArray(states)) fail('states', 'expected an array');
    const seen = new Set<number>();
    states.forEach((s: unknown, i) => {
      const at = `states[${i}]`;
      if (!isPlainObject(s)) fail(at, 'expected an object');
      checkKeys(s, at, ['id', 'version']);
      if (typeof s.id !== 'number' || !Number.isInteger(s.id) || s.id <= 0)
        fail(`${at}.id`, 'expected a positive integer');
      if (typeof s.version !== 'number' || !Number.isInteger(s.version) || s.version < 0)
        fail(`${at}.version`, 'expected a non-negative integer');
      if (seen.has(s.id)) fail(`${at}.id`, `duplicate state id ${s.id}`);
      seen.add(s.id);
      outStates.push({ id: s.id, version: s.version });
    });
  }
  const out: PatchSpec = { name, replace: replace === true, objects: outObjects, states: outStates };
  if (description !== undefined) out.description = description as string;
  if (fixes !== undefined) out.fixes = [...(fixes as string[])];
  return out;
}
