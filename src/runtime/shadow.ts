// Shadow variables (kernel/livepatch/shadow.c): data attached to an existing object under an id, keyed by
// (object, id). One store per process, shared by every copy of livepatch; a shadow dies with its object.

export type ShadowId = number | string;
/** Fills `data` (a fresh object) or returns the value to store instead; throwing refuses the allocation. */
export type ShadowCtor<T> = (obj: object, data: Record<string, unknown>, ctorData: unknown) => T | void;
export type ShadowDtor<T> = (obj: object, data: T) => void;

interface IdTable {
  map: WeakMap<object, unknown>;
  // Weak references so that freeAll can visit every object holding this id without keeping it alive.
  refs: Set<WeakRef<object>>;
}

export interface ShadowApi {
  /** The shadow data of (obj, id), or undefined. */
  get<T = unknown>(obj: object, id: ShadowId): T | undefined;
  /** Creates (obj, id); returns undefined (and logs) if it exists already or the constructor throws. */
  alloc<T = Record<string, unknown>>(
    obj: object,
    id: ShadowId,
    ctor?: ShadowCtor<T>,
    ctorData?: unknown,
  ): T | undefined;
  /** The existing data (the constructor is not called), else as alloc. */
  getOrAlloc<T = Record<string, unknown>>(
    obj: object,
    id: ShadowId,
    ctor?: ShadowCtor<T>,
    ctorData?: unknown,
  ): T | undefined;
  /** Detaches (obj, id), calling dtor with its data; a missing variable is a silent no-op. */
  free<T = unknown>(obj: object, id: ShadowId, dtor?: ShadowDtor<T>): void;
  /** free() for every object that has a shadow with this id. */
  freeAll<T = unknown>(id: ShadowId, dtor?: ShadowDtor<T>): void;
}

interface Store {
  ids: Map<ShadowId, IdTable>;
  /** Where warnings go: the runtime's log once it exists, else nowhere. */
  log: ((line: string) => void) | undefined;
}

const STORE_KEY = Symbol.for('livepatch.shadow');

function store(): Store {
  const g = globalThis as unknown as Record<symbol, Store | undefined>;
  let s = g[STORE_KEY];
  if (s === undefined) {
    s = { ids: new Map(), log: undefined };
    Object.defineProperty(globalThis, STORE_KEY, { value: s, enumerable: false, configurable: true });
  }
  return s;
}

/** Sends the store's warnings to a log (called by the runtime). */
export function setShadowLog(log: (line: string) => void): void {
  store().log = log;
}

const finalizer = new FinalizationRegistry<{ table: IdTable; ref: WeakRef<object> }>(({ table, ref }) =>
  table.refs.delete(ref),
);

function describe(obj: object, id: ShadowId): string {
  const kind =
    typeof obj === 'function'
      ? 'function'
      : (Object.getPrototypeOf(obj) as { constructor?: { name?: string } } | null)?.constructor?.name ||
        'Object';
  return `<${kind}, ${typeof id === 'number' ? `0x${id.toString(16)}` : `'${id}'`}>`;
}

function checkKey(obj: unknown, id: unknown): void {
  if ((typeof obj !== 'object' || obj === null) && typeof obj !== 'function')
    throw new TypeError('shadow: obj must be an object or a function');
  if (typeof id !== 'number' && typeof id !== 'string')
    throw new TypeError('shadow: id must be a number or a string');
}

function create<T>(
  s: Store,
  obj: object,
  id: ShadowId,
  ctor: ShadowCtor<T> | undefined,
  ctorData: unknown,
): T | undefined {
  let table = s.ids.get(id);
  let data: unknown = {};
  if (ctor !== undefined) {
    try {
      const r = ctor(obj, data as Record<string, unknown>, ctorData);
      if (r !== undefined) data = r;
    } catch (e) {
      s.log?.(
        `livepatch: Failed to construct shadow variable ${describe(obj, id)} (${(e as Error)?.message ?? String(e)})`,
      );
      return undefined;
    }
  }
  if (table === undefined) s.ids.set(id, (table = { map: new WeakMap(), refs: new Set() }));
  const ref = new WeakRef(obj);
  table.map.set(obj, data);
  table.refs.add(ref);
  finalizer.register(obj, { table, ref }, ref);
  return data as T;
}

function remove(table: IdTable, obj: object): void {
  table.map.delete(obj);
  for (const ref of table.refs)
    if (ref.deref() === obj) {
      table.refs.delete(ref);
      finalizer.unregister(ref);
    }
}

export const shadow: ShadowApi = {
  get<T>(obj: object, id: ShadowId): T | undefined {
    checkKey(obj, id);
    return store().ids.get(id)?.map.get(obj) as T | undefined;
  },
  alloc<T>(obj: object, id: ShadowId, ctor?: ShadowCtor<T>, ctorData?: unknown): T | undefined {
    checkKey(obj, id);
    const s = store();
    if (s.ids.get(id)?.map.has(obj)) {
      s.log?.(`livepatch: Duplicate shadow variable ${describe(obj, id)}`);
      return undefined;
    }
    return create(s, obj, id, ctor, ctorData);
  },
  getOrAlloc<T>(obj: object, id: ShadowId, ctor?: ShadowCtor<T>, ctorData?: unknown): T | undefined {
    checkKey(obj, id);
    const s = store();
    const table = s.ids.get(id);
    if (table?.map.has(obj)) return table.map.get(obj) as T;
    return create(s, obj, id, ctor, ctorData);
  },
  free<T>(obj: object, id: ShadowId, dtor?: ShadowDtor<T>): void {
    checkKey(obj, id);
    const table = store().ids.get(id);
    if (table === undefined || !table.map.has(obj)) return;
    const data = table.map.get(obj) as T;
    remove(table, obj);
    dtor?.(obj, data);
  },
  freeAll<T>(id: ShadowId, dtor?: ShadowDtor<T>): void {
    const table = store().ids.get(id);
    if (table === undefined) return;
    for (const ref of [...table.refs]) {
      const obj = ref.deref();
      if (obj === undefined || !table.map.has(obj)) {
        table.refs.delete(ref);
        continue;
      }
      const data = table.map.get(obj) as T;
      remove(table, obj);
      dtor?.(obj, data);
    }
  },
};
