// After load/enable/disable/force: follow the transition, and when it stalls show who blocks it and reverse on request.
import type { KernelContext, KernelOutcome } from './context.js';
import { note } from './context.js';
import { formatTasks } from './list.js';
import { removeModule } from './modcmd.js';
import { isModuleLoaded, writePatchAttr, type KernelPatch } from './sysfs.js';
import { taskStack, type KernelTask } from './tasks.js';
import { waitForTransition } from './transition.js';

export interface BlockingTask extends KernelTask {
  stack: string[];
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * Waits for `name`'s transition (to its gone state when `untilGone`) and turns the result into an outcome:
 * 0 when it finished; on timeout, 3 with the blocking tasks and how to proceed — or, with
 * --reverse-on-timeout, the reversal's result (1: the action did not take effect; a reversed load also
 * removes the module).
 */
export async function followTransition(
  ctx: KernelContext,
  name: string,
  action: 'load' | 'enable' | 'disable' | 'force',
  untilGone: boolean,
): Promise<KernelOutcome> {
  note(ctx, `waiting (up to ${ctx.timeoutMs / 1000} seconds) for the transition of '${name}' to complete...`);
  const wait = (gone: boolean) =>
    waitForTransition(ctx.paths, name, {
      timeoutMs: ctx.timeoutMs,
      pollMs: ctx.pollMs,
      untilGone: gone,
      progress: (line) => note(ctx, line),
    });
  const r = await wait(untilGone);
  if (r.outcome === 'gone' && (action === 'load' || action === 'enable')) {
    // Someone reversed it meanwhile (or its enable failed): the patch the user asked for is not in effect.
    return {
      code: 1,
      json: { result: 'gone', ms: r.ms, patch: null },
      text: [
        `'${name}': the patch was freed before its patching transition completed (reversed?); it is not applied`,
      ],
    };
  }
  if (r.outcome !== 'timeout') {
    const done =
      r.outcome === 'gone'
        ? `'${name}': unpatching complete, patch removed (${seconds(r.ms)})`
        : `'${name}': ${r.patch?.enabled ? 'patching' : 'unpatching'} complete (${seconds(r.ms)})`;
    return { code: 0, json: { result: r.outcome, ms: r.ms, patch: r.patch }, text: [done] };
  }

  const patch = r.patch as KernelPatch;
  const blocking: BlockingTask[] = r.pending.map((t) => ({ ...t, stack: taskStack(ctx.paths, t) }));
  const direction = patch.enabled ? 'patching' : 'unpatching';
  const text = [
    `'${name}': the ${direction} transition did not finish in ${seconds(r.ms)}; ${blocking.length} task(s) not yet switched:`,
  ];
  for (const t of blocking) {
    text.push(...formatTasks([t]));
    text.push(...t.stack.map((l) => `          ${l}`));
  }

  if (!ctx.reverseOnTimeout) {
    text.push(
      '',
      `the patch stays in transition; the kernel keeps retrying and signals the tasks above.`,
      `to reverse it:  livepatch kernel ${patch.enabled ? 'disable' : 'enable'} ${name}   (or rerun with --reverse-on-timeout)`,
      `to force it:    livepatch kernel force ${name}   (unsafe: no consistency; forcing an unpatching or a replace pins modules for good)`,
    );
    return { code: 3, json: { result: 'timeout', ms: r.ms, patch, blocking }, text };
  }

  note(
    ctx,
    `'${name}': reversing transition from ${direction} to ${patch.enabled ? 'unpatching' : 'patching'}`,
  );
  writePatchAttr(ctx.paths, name, 'enabled', patch.enabled ? '0' : '1');
  // A reversed patching transition ends with the patch freed; a reversed unpatching one with it enabled again.
  const back = await wait(patch.enabled);
  if (back.outcome === 'timeout') {
    text.push(`'${name}': the reversal did not finish either; see 'livepatch kernel list'`);
    return {
      code: 3,
      json: { result: 'timeout', reversing: true, ms: r.ms + back.ms, patch: back.patch, blocking },
      text,
    };
  }
  let removed = false;
  if (action === 'load' && back.outcome === 'gone' && isModuleLoaded(ctx.paths, name)) {
    await removeModule(ctx.rmmod, name);
    removed = true;
  }
  text.push(
    `'${name}': transition reversed${removed ? ', patch disabled and its module removed' : ''}; the ${action} did not take effect`,
  );
  return {
    code: 1,
    json: { result: 'reversed', ms: r.ms + back.ms, patch: back.patch, blocking, removed },
    text,
  };
}
