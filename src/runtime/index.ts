// The runtime's public surface: the process-wide singleton that the loader installs and the control
// server drives (load, enable, disable, remove, force, the tree, symbols, the log, sysfs reads and writes).
import { LivepatchError } from '../errors.js';
import { Core, type Patch, type PatchMeta } from './core.js';
import { RingLog, type EventLog } from './log.js';
import { installRegistry, type InstalledRegistry } from './registry.js';
import { setShadowLog } from './shadow.js';
import { funcDir, stackOrder, sysfsRead, sysfsWrite, treeOf, type TreePatch } from './sysfs.js';
import { PATCHED, TaskTable } from './tasks.js';
import type { PatchSpec } from './spec.js';

export type { PatchSpec, PatchMeta, EventLog };
export { installRegistry };

export interface TaskInfo {
  id: number;
  kind: 'http' | 'task';
  /** "GET /slow" for a request, the label given to task() otherwise. */
  label: string;
  ageMs: number;
  /** Patched functions (`module:name`) it entered during this transition. */
  entered: string[];
}

export interface TransitionInfo {
  patch: string;
  target: 'patched' | 'unpatched';
  startedAt: number;
  tasks: TaskInfo[];
}

export interface SymbolsView {
  modules: {
    id: string;
    hash: string;
    file: string;
    status: 'instrumented' | 'failed' | 'skipped';
    reason?: string;
    funcs: { name: string; sympos: number; kind: string }[];
    unpatchable: { name: string; reason: string }[];
  }[];
}

export interface PatchInfo {
  name: string;
  enabled: boolean;
  transition: boolean;
  replace: boolean;
  forced: boolean;
  stack_order: number;
  loadedAt: number;
  meta: PatchMeta;
  states: { id: number; version: number }[];
  objects: {
    name: string;
    hash: string | null;
    loaded: boolean;
    patched: boolean;
    instances: { file: string; hash: string }[];
    callbacks: string[];
    funcs: { name: string; sympos: number; nop: boolean; form: 'replacement' | 'factory' | 'nop' }[];
  }[];
}

export interface Runtime {
  /** Registers and enables a patch (the transition may still run on return). Throws LivepatchError. */
  loadPatch(spec: PatchSpec, meta?: PatchMeta): void;
  enablePatch(name: string): void;
  disablePatch(name: string): void;
  /** Unregisters a disabled patch. */
  removePatch(name: string): void;
  forcePatch(name: string): void;
  waitForTransition(timeoutMs: number): Promise<boolean>;
  transition(): TransitionInfo | null;
  tree(): { patches: TreePatch[] };
  patchInfo(name: string): PatchInfo;
  symbols(): SymbolsView;
  readonly log: EventLog;
  sysfsRead(path: string): string;
  sysfsWrite(path: string, value: string): void;
  /** Runs fn as a task (see `task` in the package's main export). */
  runTask<T>(fn: () => T, label?: string): T;
}

function createRuntime(registry: InstalledRegistry): Runtime {
  const log = new RingLog();
  const tasks = new TaskTable();
  const core = new Core(log, tasks, () => registry.instances);
  registry.onComing = (inst) => core.moduleComing(inst);
  registry.onGoing = (inst) => core.moduleGoing(inst);
  setShadowLog((line) => log.write(line));
  tasks.hookServers();

  const get = (name: string): Patch => {
    const p = core.registered.get(name);
    if (p === undefined) throw new LivepatchError('ENOENT', `no such patch '${name}'`, { patch: name });
    return p;
  };
  const loaded = (id: string) => registry.instances.some((i) => i.id === id);

  return {
    log,
    loadPatch(spec, meta = {}) {
      // A patch module made with another copy of the package is a plain frozen object: validated again here.
      core.load(spec, meta);
    },
    enablePatch: (name) => core.enable(get(name)),
    disablePatch: (name) => core.disable(get(name)),
    removePatch: (name) => core.remove(get(name)),
    forcePatch: (name) => core.force(get(name)),
    waitForTransition: (ms) => core.waitForTransition(ms),
    transition() {
      const p = core.transitionPatch;
      if (p === undefined) return null;
      const now = Date.now();
      return {
        patch: p.name,
        target: core.target === PATCHED ? 'patched' : 'unpatched',
        startedAt: core.transitionStartedAt,
        tasks: tasks.pending().map((t) => ({
          id: t.id,
          kind: t.kind,
          label: t.label,
          ageMs: now - t.startedAt,
          // Without always-on tagging, a task that began before the transition is untagged: it is credited
          // with what all untagged code entered.
          entered: [...(tasks.alwaysTag || t.gen === tasks.gen ? (t.entered ?? []) : tasks.untaggedEntered)],
        })),
      };
    },
    tree: () => treeOf(core, loaded),
    patchInfo(name) {
      const p = get(name);
      return {
        name: p.name,
        enabled: p.enabled,
        transition: core.transitionPatch === p,
        replace: p.replace,
        forced: p.forced,
        stack_order: stackOrder(core, p),
        loadedAt: p.loadedAt,
        meta: p.meta,
        states: p.states.map((s) => ({ id: s.id, version: s.version })),
        objects: p.objects.map((o) => ({
          name: o.name,
          hash: o.hash ?? null,
          loaded: o.name === 'process' || loaded(o.name),
          patched: o.applied.length > 0,
          instances: o.applied.flatMap((a) => (a.inst ? [{ file: a.inst.file, hash: a.inst.hash }] : [])),
          callbacks: Object.keys(o.callbacks),
          funcs: o.funcs.map((f) => ({
            name: f.name,
            sympos: Number(funcDir(f).split(',').pop()),
            nop: f.spec === undefined,
            form: f.spec === undefined ? 'nop' : f.spec.factory !== undefined ? 'factory' : 'replacement',
          })),
        })),
      };
    },
    symbols() {
      return {
        modules: [
          ...registry.instances.map((i) => {
            const t = i.symbols();
            return {
              id: i.id,
              hash: i.hash,
              file: i.file,
              status: 'instrumented' as const,
              funcs: t.funcs.map((f) => ({ name: f.name, sympos: f.sympos, kind: f.kind })),
              unpatchable: t.unpatchable.map((u) => ({ name: u.name, reason: u.reason })),
            };
          }),
          ...registry.notes.map((n) => ({
            id: n.id,
            hash: n.hash,
            file: n.file,
            status: n.status,
            reason: n.reason,
            funcs: [],
            unpatchable: [],
          })),
        ],
      };
    },
    sysfsRead: (path) => sysfsRead(core, path),
    sysfsWrite: (path, value) => sysfsWrite(core, path, value),
    runTask: (fn, label = 'task') => tasks.run(fn, label),
  };
}

/**
 * The process-wide runtime, created on first call (installing the registry and the HTTP task hooks). If
 * another copy of livepatch installed the registry first, its runtime is returned: only one copy patches.
 */
export function getRuntime(): Runtime {
  const registry = installRegistry();
  if (registry.runtime === undefined) registry.runtime = createRuntime(registry);
  return registry.runtime as Runtime;
}
