// The registry on globalThis that instrumented modules call (docs/internals/abi.md §4): one per process,
// shared by every copy of livepatch, holding the table of loaded module instances.
import {
  ABI_ACCEPTED,
  ABI_VERSION,
  REGISTRY_KEY,
  type ModuleNote,
  type ModuleRegistration,
  type Registry,
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
}

/** What the runtime core does when a module instance registers; throws to refuse its load. */
export type ModuleComingHook = (inst: ModuleInstance) => void;

/** The registry plus what only this runtime uses (the runtime object, for a second copy of the package). */
export interface InstalledRegistry extends Registry {
  readonly instances: ModuleInstance[];
  readonly notes: ModuleNote[];
  onComing: ModuleComingHook | undefined;
  runtime: unknown;
}

function makeRegistry(): InstalledRegistry {
  let seq = 0;
  // Symbol tables kept outside the code (abi.md §3), by key: read on first use, and only then.
  const readers = new Map<string, () => string | undefined>();
  const reg: InstalledRegistry = {
    abi: ABI_VERSION,
    version: VERSION,
    instances: [],
    notes: [],
    onComing: undefined,
    runtime: undefined,
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
      let table: SymbolTable | undefined;
      let bindings: Record<string, unknown> | undefined;
      const inst: ModuleInstance = {
        id: m.id,
        hash: m.hash,
        file: m.file,
        format: m.format,
        slots: m.slots,
        // One object per instance, whoever asks: patches key per-instance caches on it (src/build/emit.ts).
        get bindings() {
          return (bindings ??= typeof m.bindings === 'function' ? m.bindings() : m.bindings);
        },
        seq: ++seq,
        symbols: () => table ?? (table = symbolsOf(m, readers)) ?? unavailable(),
      };
      reg.instances.push(inst);
      try {
        reg.onComing?.(inst);
      } catch (e) {
        reg.instances.splice(reg.instances.indexOf(inst), 1);
        throw e;
      }
    },
    provideSymbols(key: string, read: () => string | undefined): void {
      readers.set(key, read);
    },
    noteModule(note: ModuleNote): void {
      // The id and the reason are read when the note is, once: a loader may hand over getters for them that cost
      // package.json reads (a dependency nobody named, abi.md §4), and most notes are never listed.
      let id: string | undefined;
      let reason: string | undefined;
      const { hash, file, status } = note;
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

function symbolsOf(
  m: ModuleRegistration,
  readers: Map<string, () => string | undefined>,
): SymbolTable | undefined {
  if (typeof m.symbols === 'string') return parseSymbols(m.symbols);
  let json: string | undefined;
  try {
    json = m.symbolsKey === undefined ? undefined : readers.get(m.symbolsKey)?.();
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
    Object.defineProperty(globalThis, REGISTRY_KEY, {
      value: reg,
      writable: false,
      enumerable: false,
      configurable: true,
    });
  }
  return reg;
}
