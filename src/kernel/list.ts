// `kernel list`: the patches in /sys/kernel/livepatch, the tasks holding up a transition, and what is installed.
import { requireLivepatch, runningRelease } from './checks.js';
import type { KernelContext, KernelOutcome } from './context.js';
import { installedModules } from './install.js';
import { readPatches, type KernelPatch } from './sysfs.js';
import { pendingTasks, type KernelTask } from './tasks.js';

/** The state words kpatch's `list` uses, which operators already grep for. */
export function patchState(p: KernelPatch): string {
  if (p.transition) return p.enabled ? 'enabling...' : 'disabling...';
  return p.enabled ? 'enabled' : 'disabled';
}

function flag(v: boolean | null): string {
  return v === null ? '-' : v ? '1' : '0';
}

export function formatPatch(p: KernelPatch): string[] {
  const lines = [
    `${p.name} [${patchState(p)}]  replace=${flag(p.replace)} stack_order=${p.stack_order ?? '-'}`,
  ];
  for (const o of p.objects) {
    lines.push(`  ${o.name}${o.patched === null ? '' : o.patched ? ' (patched)' : ' (not patched)'}`);
    for (const f of o.funcs) lines.push(`    ${f.name},${f.sympos}`);
  }
  return lines;
}

export function formatTasks(tasks: KernelTask[]): string[] {
  return tasks.map(
    (t) => `  ${String(t.tid).padStart(7)} ${t.comm}${t.tid !== t.pid ? ` (thread of ${t.pid})` : ''}`,
  );
}

export function list(ctx: KernelContext): KernelOutcome {
  requireLivepatch(ctx.paths);
  const patches = readPatches(ctx.paths);
  const inTransition = patches.find((p) => p.transition);
  const transition = inTransition
    ? {
        patch: inTransition.name,
        target: inTransition.enabled ? 'patched' : 'unpatched',
        tasks: pendingTasks(ctx.paths, inTransition.enabled ? 1 : 0),
      }
    : null;
  const release = ctx.kernelRelease ?? runningRelease(ctx.paths);
  const installed = installedModules(ctx.paths.root, release);
  const text = ['Loaded patch modules:'];
  if (patches.length === 0) text.push('  (none)');
  for (const p of patches) text.push(...formatPatch(p));
  if (transition) {
    text.push('', `Tasks not yet switched (transition of '${transition.patch}' to ${transition.target}):`);
    text.push(...(transition.tasks.length > 0 ? formatTasks(transition.tasks) : ['  (none: completing)']));
  }
  text.push('', `Installed patch modules (kernel ${release}):`);
  text.push(...(installed.length > 0 ? installed.map((m) => `  ${m.name}`) : ['  (none)']));
  return { code: 0, json: { patches, transition, installed }, text };
}
