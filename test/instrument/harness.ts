// Test harness for the instrumenter: a registry test double, and loading original and instrumented copies of a
// fixture as real CommonJS/ES modules from a temporary directory.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { instrument } from '../../src/instrument/index.js';
import type { ModuleFormat, SymbolTable } from '../../src/instrument/types.js';
import { REGISTRY_GLOBAL, type ModuleRegistration, type Registry } from '../../src/runtime/abi.js';
import { fixture, tmpProject } from '../helpers.js';

/** A registry double: records registrations, nothing else (the real one is src/runtime's). */
export function installRegistry(): { modules: ModuleRegistration[]; uninstall: () => void } {
  const modules: ModuleRegistration[] = [];
  const registry: Registry = {
    abi: 3,
    version: 'test',
    registerModule: (reg) => void modules.push(reg),
    noteModule: () => {},
    provideSymbols: () => {},
    construct: Reflect.construct,
    slotFacade: (objects) => {
      const facade: Record<string, unknown> = {};
      for (const o of objects)
        for (const k of Object.keys(o))
          if (!k.startsWith('__lp$'))
            Object.defineProperty(facade, k, {
              get: () => o[k],
              set: (v) => void (o[k] = v),
              enumerable: true,
            });
      return facade;
    },
  };
  // Instrumented code reads it by name (abi.md §4).
  const g = globalThis as Record<string, unknown>;
  const previous = g[REGISTRY_GLOBAL];
  g[REGISTRY_GLOBAL] = registry;
  return { modules, uninstall: () => void (g[REGISTRY_GLOBAL] = previous) };
}

export interface Loaded {
  original: any;
  instrumented: any;
  reg: ModuleRegistration;
  /** The accessor object the header's `bindings` makes (abi.md §1). */
  bindings: Record<string, unknown>;
  table: SymbolTable;
  dir: string;
}

/**
 * Loads `test/fixtures/instrument/<name>` twice from a temp dir: as it is (orig/<name>) and instrumented
 * (instr/<name>), with a registry double installed while the instrumented copy loads.
 */
export async function loadFixture(name: string, cleanup: (fn: () => void) => void): Promise<Loaded> {
  const source = readFileSync(fixture('instrument', name), 'utf8');
  const format: ModuleFormat = name.endsWith('.mjs') ? 'module' : 'commonjs';
  const project = tmpProject({}, 'lp-instrument-');
  cleanup(project.cleanup);
  const dir = project.dir;
  const origFile = join(dir, 'orig', basename(name));
  const instrFile = join(dir, 'instr', basename(name));
  mkdirSync(join(dir, 'orig'));
  mkdirSync(join(dir, 'instr'));
  writeFileSync(origFile, source);
  const result = instrument(source, {
    id: `fixtures/${name}`,
    hash: 'f'.repeat(64),
    file: instrFile,
    format,
  });
  writeFileSync(instrFile, result.code);
  const original = await load(origFile, format);
  const registry = installRegistry();
  let instrumented;
  try {
    instrumented = await load(instrFile, format);
  } finally {
    registry.uninstall();
  }
  const reg = registry.modules[0];
  if (reg === undefined) throw new Error(`${name}: the instrumented module did not register`);
  if (typeof reg.bindings !== 'function')
    throw new Error(`${name}: 'bindings' is not a function (abi.md §1)`);
  const table = JSON.parse(reg.symbols ?? 'null') as SymbolTable;
  assert.deepEqual(table, result.symbols, `${name}: the header's table is the one instrument() returned`);
  return { original, instrumented, reg, bindings: reg.bindings(), table, dir };
}

async function load(file: string, format: ModuleFormat): Promise<any> {
  if (format === 'commonjs') return createRequire(import.meta.url)(file);
  return import(pathToFileURL(file).href);
}

/** The slot index of a symbol, by name (and sympos). */
export function slotOf(table: SymbolTable, name: string, sympos = 1): number {
  const f = table.funcs.find((s) => s.name === name && s.sympos === sympos);
  if (f === undefined)
    throw new Error(`no symbol '${name}' (sympos ${sympos}) in ${table.funcs.map((s) => s.name)}`);
  return f.index;
}

type Dispatch = (self: unknown, scope: (() => Record<string, unknown>) | undefined) => unknown;

/** Fills a slot as the runtime would: the dispatcher first, then the flag. Returns the undo. */
export function fillSlot(
  reg: ModuleRegistration,
  table: SymbolTable,
  name: string,
  dispatch: Dispatch,
): () => void {
  const n = slotOf(table, name);
  reg.slots[`r${n}`] = dispatch;
  reg.slots[`f${n}`] = true;
  return () => {
    reg.slots[`f${n}`] = false;
    reg.slots[`r${n}`] = undefined;
  };
}
