// Text rendering for the CLI: tables, durations, the sysfs-style tree, and a generic indented view.

/** Columns padded to the widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

export function since(iso: string | number | undefined, now = Date.now()): string {
  if (iso === undefined) return '?';
  const t = typeof iso === 'number' ? iso : Date.parse(iso);
  return Number.isFinite(t) ? duration(now - t) : '?';
}

export interface TreeFunc {
  name: string;
  sympos?: number;
}
export interface TreeObject {
  name: string;
  patched?: boolean;
  funcs?: TreeFunc[];
}
export interface TreePatch {
  name: string;
  enabled: boolean;
  transition: boolean;
  replace?: boolean;
  stack_order?: number;
  objects?: TreeObject[];
}

/** The kernel's four states of a patch, as `kpatch list` shows them. */
export function patchState(p: Pick<TreePatch, 'enabled' | 'transition'>): string {
  if (p.transition) return p.enabled ? 'enabling...' : 'disabling...';
  return p.enabled ? 'enabled' : 'disabled';
}

export function renderTree(patches: TreePatch[]): string {
  if (patches.length === 0) return 'no patches loaded';
  const lines: string[] = [];
  for (const p of patches) {
    const flags = [patchState(p), ...(p.replace ? ['replace'] : [])];
    const order = p.stack_order !== undefined ? `  stack_order ${p.stack_order}` : '';
    lines.push(`${p.name} [${flags.join(', ')}]${order}`);
    for (const o of p.objects ?? []) {
      lines.push(`  ${o.name}${o.patched === false ? '  (not loaded yet: waiting for the module)' : ''}`);
      for (const f of o.funcs ?? []) lines.push(`    ${f.name},${f.sympos && f.sympos > 0 ? f.sympos : 1}`);
    }
  }
  return lines.join('\n');
}

/** A worker thread as `list` reports it (src/control/threads.ts). */
export interface TreeThread {
  thread: number;
  loader?: boolean;
  settled: boolean;
  transition: { patch: string; target: string; tasks: string[] } | null;
  errors: { seq: number; op: string; name: string; message: string }[];
  patches: { name: string; enabled: boolean }[];
}

/** One line per worker thread: which patches it runs, or what it has not caught up with yet. */
export function renderThreads(threads: TreeThread[]): string {
  const lines: string[] = [];
  for (const t of threads) {
    if (t.loader === false) {
      lines.push(
        `worker thread ${t.thread}: not reporting: started without the loader (or still starting); patches do not reach it`,
      );
      continue;
    }
    const patches = t.patches.map((p) => (p.enabled ? p.name : `${p.name} (disabled)`));
    const state = t.transition
      ? `in transition (${t.transition.patch} → ${t.transition.target}, ${t.transition.tasks.length} old task(s))`
      : t.settled
        ? 'in step'
        : 'not caught up yet (event loop busy?)';
    lines.push(
      `worker thread ${t.thread}: ${patches.length === 0 ? 'no patches' : patches.join(', ')}; ${state}`,
    );
    for (const e of t.errors) lines.push(`  failed: ${e.op} '${e.name}': ${e.message}`);
  }
  return lines.join('\n');
}

/** An indented key: value view of any JSON value (for `info` and unknown shapes). */
export function renderValue(v: unknown, indent = ''): string {
  if (v === null || typeof v !== 'object') return `${indent}${String(v)}`;
  const lines: string[] = [];
  if (Array.isArray(v)) {
    if (v.length === 0) return `${indent}(none)`;
    for (const item of v) {
      if (item !== null && typeof item === 'object') {
        const inner = renderValue(item, indent + '  ').split('\n');
        lines.push(`${indent}- ${(inner[0] ?? '').trimStart()}`, ...inner.slice(1));
      } else lines.push(`${indent}- ${String(item)}`);
    }
    return lines.join('\n');
  }
  for (const [k, val] of Object.entries(v)) {
    if (
      val !== null &&
      typeof val === 'object' &&
      (Array.isArray(val) ? val.length > 0 : Object.keys(val).length > 0)
    ) {
      lines.push(`${indent}${k}:`, renderValue(val, indent + '  '));
    } else lines.push(`${indent}${k}: ${Array.isArray(val) ? '(none)' : String(val)}`);
  }
  return lines.join('\n');
}
