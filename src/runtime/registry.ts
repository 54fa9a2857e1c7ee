// The registry on globalThis that instrumented modules call (docs/internals/abi.md §4): one per process,
// shared by every copy of livepatch, holding the table of loaded module instances.
import {
  ABI_ACCEPTED,
  ABI_VERSION,
  REGISTRY_GLOBAL,
  REGISTRY_KEY,
  type ModuleNote,
  type ModuleRegistration,
  type Registry,
  type Slots,
} from './abi.js';
import type { SymbolTable } from '../instrument/types.js';

export const VERSION = '0.1.0';

/** One evaluated copy of a module file: a module id can have several (re-required, or two copies on disk). */
export interface ModuleInstance {
  readonly id: string;
  readonly hash: string;
  readonly file: string;
  readonly format: 'module' | 'commonjs';
  readonly slots: Record<string, unknown>;
  /** The accessor object over the module's top-level bindings: made on first read, then the same object. */
  readonly bindings: Record<string, unknown>;
  /** 1-based, in order of registration, across all modules. */
  readonly seq: number;
  /** The parsed symbol table (parsed on first use: most modules are never patched). */
  symbols(): SymbolTable;
  /**
   * A later instance of a file, held only while the app holds it: what the runtime keeps of it after a redirected
   * call (its SELF and SCOPE) it keeps weakly.
   */
  readonly weak?: boolean;
}

/** What the runtime core does when a module instance registers; throws to refuse its load. */
export type ModuleComingHook = (inst: ModuleInstance) => void;

/** What the runtime core does when a module instance is gone (klp_module_going): the app holds none of it. */
export type ModuleGoingHook = (inst: ModuleInstance) => void;

/** The registry plus what only this runtime uses (the runtime object, for a second copy of the package). */
export interface InstalledRegistry extends Registry {
  readonly instances: ModuleInstance[];
  readonly notes: ModuleNote[];
  onComing: ModuleComingHook | undefined;
  onGoing: ModuleGoingHook | undefined;
  runtime: unknown;
}

function makeRegistry(): InstalledRegistry {
  let seq = 0;
  // Symbol tables kept outside the code (abi.md §3), by key: read on first use, and only then.
  const readers = new Map<string, () => string | undefined>();
  // A file evaluated again (its require.cache entry deleted, as import-fresh, decache and config reloaders do) makes
  // a new instance each time, and the app drops the old one. The first instance of each path is held as before;
  // later ones only while the app holds a function of theirs (every function reaches the slot object through the
  // module's scope), so that the registry does not keep every discarded copy of the module alive.
  const evaluated = new Set<string>();
  const going = new FinalizationRegistry<ModuleInstance>((inst) => {
    const i = reg.instances.indexOf(inst);
    if (i < 0) return;
    reg.instances.splice(i, 1);
    try {
      reg.onGoing?.(inst);
    } catch {}
  });
  const noted = new Set<string>();
  const reg: InstalledRegistry = {
    abi: ABI_VERSION,
    version: VERSION,
    instances: [],
    notes: [],
    onComing: undefined,
    onGoing: undefined,
    runtime: undefined,
    construct: Reflect.construct,
    slotFacade(objects: Slots[]): Slots {
      const facade: Slots = {};
      for (const o of objects)
        for (const k of Object.keys(o))
          if (!k.startsWith('__lp$'))
            Object.defineProperty(facade, k, {
              get: () => o[k],
              set: (v: unknown) => void (o[k] = v),
              enumerable: true,
            });
      return facade;
    },
    registerModule(m: ModuleRegistration): void {
      if (!ABI_ACCEPTED.includes(m.abi)) {
        // A module instrumented for another ABI must not be driven by this runtime: list it, leave it alone.
        reg.noteModule({
          id: m.id,
          hash: m.hash,
          file: m.file,
          status: 'skipped',
          reason: `slot ABI ${m.abi}, runtime speaks ${ABI_VERSION}`,
        });
        return;
      }
      // A later instance keeps nothing of `m`: it holds the slots and the bindings arrow, that is, the module's scope.
      const { symbols: inline, symbolsKey } = m;
      let table: SymbolTable | undefined;
      const symbols = () => table ?? (table = symbolsOf(inline, symbolsKey, readers)) ?? unavailable();
      // By path alone: a reloader usually reloads because the file changed, and each content is a new hash.
      const again = evaluated.has(m.file);
      evaluated.add(m.file);
      const inst = again ? weakInstance(m, ++seq, symbols) : strongInstance(m, ++seq, symbols);
      reg.instances.push(inst);
      try {
        reg.onComing?.(inst);
      } catch (e) {
        reg.instances.splice(reg.instances.indexOf(inst), 1);
        throw e;
      }
      if (again) going.register(m.slots, inst);
    },
    provideSymbols(key: string, read: () => string | undefined): void {
      readers.set(key, read);
    },
    noteModule(note: ModuleNote): void {
      const { hash, file, status } = note;
      // One note per file and content: a file evaluated again is the same module as far as a listing goes.
      const key = `${file}\0${hash}\0${status}`;
      if (noted.has(key)) return;
      noted.add(key);
      // The id and the reason are read when the note is, once: a loader may hand over getters for them that cost
      // package.json reads (a dependency nobody named, abi.md §4), and most notes are never listed.
      let id: string | undefined;
      let reason: string | undefined;
      reg.notes.push({
        get id() {
          return (id ??= String(note.id));
        },
        hash,
        file,
        status,
        get reason() {
          return (reason ??= String(note.reason));
        },
      });
    },
  };
  return reg;
}

/** What a module without a readable table lists: nothing patchable, and why. Not kept: a later read may work. */
function unavailable(): SymbolTable {
  return {
    funcs: [],
    unpatchable: [
      {
        name: '*',
        line: 0,
        reason: 'symbol table not available (its cache entry is gone and cannot be made again from the file)',
      },
    ],
  };
}

type Bindings = Record<string, unknown>;

/** ABI 2 and 3 hand over an arrow that makes the accessor object; ABI 1 the object itself. */
function makeBindings(given: ModuleRegistration['bindings']): Bindings {
  return typeof given === 'function' ? given() : given;
}

/** The first instance of a file: holds its slots and bindings as long as the process runs. */
function strongInstance(m: ModuleRegistration, seq: number, symbols: () => SymbolTable): ModuleInstance {
  let bindings: Bindings | undefined;
  return {
    id: m.id,
    hash: m.hash,
    file: m.file,
    format: m.format,
    slots: m.slots,
    // One object per instance, whoever asks: patches key per-instance caches on it (src/build/emit.ts).
    get bindings() {
      return (bindings ??= makeBindings(m.bindings));
    },
    seq,
    symbols,
  };
}

// A later instance's bindings live in tables keyed by its slot object: an entry lasts as long as the slots do, and
// does not keep them alive itself (an ephemeron), though the bindings' accessors close over the same scope.
const makers = new WeakMap<object, ModuleRegistration['bindings']>();
const made = new WeakMap<object, Bindings>();
const forwarders = new WeakMap<object, Bindings>();

/** The accessor object over the instance's bindings, made on first use; undefined once the instance is gone. */
function bindingsOf(slots: WeakRef<object>): Bindings | undefined {
  const s = slots.deref();
  if (s === undefined) return undefined;
  let b = made.get(s);
  if (b === undefined) made.set(s, (b = makeBindings(makers.get(s)!)));
  return b;
}

/**
 * What a later instance hands patch code as its bindings: an object with the same accessors, each reaching the
 * instance's own through the WeakRef. A replacement keeps its `ctx.bindings` (every built patch does), and with
 * the accessors themselves it would keep the module's whole scope, so the instance, alive for as long as the patch.
 */
function forwarderOf(slots: WeakRef<object>): Bindings {
  const s = slots.deref();
  if (s === undefined) return {};
  let f = forwarders.get(s);
  if (f !== undefined) return f;
  f = {};
  for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(bindingsOf(slots)))) {
    Object.defineProperty(f, name, {
      enumerable: d.enumerable ?? false,
      get: d.get && (() => bindingsOf(slots)?.[name]),
      set:
        d.set &&
        ((v: unknown) => {
          const b = bindingsOf(slots);
          if (b !== undefined) b[name] = v;
        }),
    });
  }
  forwarders.set(s, f);
  return f;
}

/** A later instance of a file: its slots held weakly, so that it goes when the app drops the module. */
function weakInstance(m: ModuleRegistration, seq: number, symbols: () => SymbolTable): ModuleInstance {
  const slots = new WeakRef(m.slots);
  makers.set(m.slots, m.bindings);
  return {
    id: m.id,
    hash: m.hash,
    file: m.file,
    format: m.format,
    // Read only by the runtime while the instance is listed; an instance collected before its finalizer ran
    // gets a slot object nobody reads.
    get slots() {
      return slots.deref() ?? {};
    },
    // One object per instance, as for the first (patches key per-instance caches on it).
    get bindings() {
      return forwarderOf(slots);
    },
    seq,
    symbols,
    weak: true,
  };
}

function symbolsOf(
  symbols: string | undefined,
  symbolsKey: string | undefined,
  readers: Map<string, () => string | undefined>,
): SymbolTable | undefined {
  if (typeof symbols === 'string') return parseSymbols(symbols);
  let json: string | undefined;
  try {
    json = symbolsKey === undefined ? undefined : readers.get(symbolsKey)?.();
  } catch {}
  return json === undefined ? undefined : parseSymbols(json);
}

function parseSymbols(json: string): SymbolTable {
  try {
    const t = JSON.parse(json) as SymbolTable;
    if (Array.isArray(t.funcs) && Array.isArray(t.unpatchable)) return t;
  } catch {}
  return { funcs: [], unpatchable: [{ name: '*', line: 0, reason: 'malformed symbol table' }] };
}

/**
 * Installs the process-wide registry, or returns the one already installed (by this or another copy of
 * livepatch with the same ABI: only one copy patches). May be called any number of times.
 * Throws ENODEV-free: a registry with another ABI is left in place and a private one is returned unused.
 */
export function installRegistry(): InstalledRegistry {
  const g = globalThis as unknown as Record<symbol, unknown>;
  const existing = g[REGISTRY_KEY] as InstalledRegistry | undefined;
  if (existing !== undefined && existing.abi === ABI_VERSION) return existing;
  const reg = makeRegistry();
  if (existing === undefined) {
    // The symbol is where copies of livepatch find each other; the name is what instrumented code reads (ABI 3).
    for (const key of [REGISTRY_KEY, REGISTRY_GLOBAL])
      Object.defineProperty(globalThis, key, {
        value: reg,
        writable: false,
        enumerable: false,
        configurable: true,
      });
  }
  return reg;
}
