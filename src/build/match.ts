// Pairs the functions of a module's old and new versions — by symbol name, by content among duplicates, and
// across renames — and says of each pair whether it is unchanged, changed, new, removed or renamed.
import { bodyFingerprint, canonical, fingerprint, type N } from './ast.js';
import type { FuncDiff, ModuleSide } from './module-diff.js';
import type { LocatedFunc } from './symbols.js';

const fpCache = new WeakMap<N, string>();
function fp(f: LocatedFunc): string {
  let v = fpCache.get(f.node);
  if (v === undefined) {
    v = fingerprint(f.node);
    fpCache.set(f.node, v);
  }
  return v;
}

function parentName(name: string): string {
  const i = name.lastIndexOf('>');
  return i < 0 ? '' : name.slice(0, i);
}

/**
 * Module-level functions renamed in a change that also changed their bodies (path-to-regexp 0.1.10's
 * `pathtoRegexp` → `pathToRegexp`): new name → running name. A pair counts only when the old name is gone, the new
 * one is new, the parameters are the same, and a module-level statement that differs between the versions (the
 * `module.exports = …` that hands the function out) becomes identical once the new name reads as the old: then
 * callers that reached the running function reach the new one the same way, and the running slot is patched.
 */
export function renamedFunctions(oldSide: ModuleSide, newSide: ModuleSide): Map<string, string> {
  const renames = new Map<string, string>();
  const params = (f: N) => (f.params as N[]).map((p) => canonical(p, false)).join(',');
  const gone = [...oldSide.top.bindings.values()].filter(
    (b) => b.kind === 'function' && !newSide.top.bindings.has(b.name),
  );
  const fresh = [...newSide.top.bindings.values()].filter(
    (b) => b.kind === 'function' && !oldSide.top.bindings.has(b.name),
  );
  if (gone.length === 0 || fresh.length === 0) return renames;
  const oldOthers = new Set(oldSide.top.others.map((o) => o.canon));
  const differing = newSide.top.others.filter((n) => !oldOthers.has(n.canon));
  for (const nb of fresh) {
    const ob = gone.find(
      (o) =>
        params(o.node) === params(nb.node) &&
        bodyFingerprint(o.node) !== bodyFingerprint(nb.node) &&
        ![...renames.values()].includes(o.name),
    );
    if (!ob) continue;
    const one = new Map([[nb.name, ob.name]]);
    if (differing.some((n) => oldOthers.has(canonical(n.node, false, one)))) renames.set(nb.name, ob.name);
  }
  return renames;
}

/** A new function's symbol name as the running module would spell it, given renamed module-level functions. */
function runningName(name: string, renames: ReadonlyMap<string, string>): string {
  const i = name.indexOf('>');
  const head = i < 0 ? name : name.slice(0, i);
  const was = renames.get(head);
  return was === undefined ? name : was + (i < 0 ? '' : name.slice(i));
}

/** Pairs old and new functions by symbol name (and by content among duplicates), then spots renames. */
export function matchFuncs(
  oldSide: ModuleSide,
  newSide: ModuleSide,
  renames: ReadonlyMap<string, string> = new Map(),
): FuncDiff[] {
  const groups = new Map<string, LocatedFunc[]>();
  for (const f of oldSide.funcs) {
    const g = groups.get(f.sym.name);
    if (g) g.push(f);
    else groups.set(f.sym.name, [f]);
  }
  const out: FuncDiff[] = [];
  const added: LocatedFunc[] = [];
  const newGroups = new Map<string, LocatedFunc[]>();
  for (const f of newSide.funcs) {
    const key = runningName(f.sym.name, renames);
    const g = newGroups.get(key);
    if (g) g.push(f);
    else newGroups.set(key, [f]);
  }
  for (const [name, news] of newGroups) {
    const olds = groups.get(name) ?? [];
    groups.delete(name);
    const pairs = new Map<LocatedFunc, LocatedFunc>();
    if (olds.length === news.length) news.forEach((n, i) => pairs.set(n, olds[i] as LocatedFunc));
    else {
      // Duplicated names with some added or removed: identical bodies pair first, the rest in source order.
      const free = [...olds];
      for (const n of news) {
        const i = free.findIndex((o) => fp(o) === fp(n));
        if (i >= 0) pairs.set(n, free.splice(i, 1)[0] as LocatedFunc);
      }
      for (const n of news) if (!pairs.has(n) && free.length > 0) pairs.set(n, free.shift() as LocatedFunc);
      for (const o of free) groups.set(name, [...(groups.get(name) ?? []), o]);
    }
    for (const n of news) {
      const o = pairs.get(n);
      const line = newSide.lines.line(n.node.start);
      if (!o) added.push(n);
      else
        out.push({
          name: o.sym.name,
          sympos: o.sym.sympos,
          change: fp(o) === fp(n) ? 'unchanged' : 'changed',
          line,
          old: o,
          new: n,
          ...(n.sym.name !== o.sym.name ? { newName: n.sym.name } : {}),
        });
    }
  }
  const removed = [...groups.values()].flat();
  for (const n of added) {
    const line = newSide.lines.line(n.node.start);
    const bfp = bodyFingerprint(n.node);
    const i = removed.findIndex(
      (o) => parentName(o.sym.name) === parentName(n.sym.name) && bodyFingerprint(o.node) === bfp,
    );
    if (i >= 0) {
      const o = removed.splice(i, 1)[0] as LocatedFunc;
      out.push({
        name: o.sym.name,
        sympos: o.sym.sympos,
        change: 'renamed',
        line,
        old: o,
        new: n,
        newName: n.sym.name,
      });
    } else out.push({ name: n.sym.name, sympos: n.sym.sympos, change: 'new', line, new: n });
  }
  for (const o of removed)
    out.push({
      name: o.sym.name,
      sympos: o.sym.sympos,
      change: 'removed',
      line: oldSide.lines.line(o.node.start),
      old: o,
    });
  return out.sort((a, b) => a.line - b.line);
}
