// Tasks during a kernel transition: who has not switched yet (/proc/<pid>/task/<tid>/patch_state), and where it sleeps.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KernelPaths } from './sysfs.js';

export interface KernelTask {
  pid: number;
  /** The thread id; equal to `pid` for a single-threaded process or when /proc has no task/ directory. */
  tid: number;
  comm: string;
  /** 0 unpatched, 1 patched (-1, idle, is never listed). */
  patch_state: number;
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function numericEntries(dir: string): number[] {
  try {
    return readdirSync(dir)
      .filter((e) => /^\d+$/.test(e))
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/**
 * The tasks whose patch_state is not `target` (1 patching, 0 unpatching): the ones that keep the transition
 * open. Threads are tasks of their own, so each /proc/<pid>/task/<tid> is read; a process that exits while
 * we read simply drops out. Call only while a transition runs: outside one every task reads -1.
 */
export function pendingTasks(paths: KernelPaths, target: 0 | 1): KernelTask[] {
  const tasks: KernelTask[] = [];
  for (const pid of numericEntries(paths.proc)) {
    const tids = numericEntries(join(paths.proc, String(pid), 'task'));
    for (const tid of tids.length > 0 ? tids : [pid]) {
      const dir =
        tids.length > 0 ? join(paths.proc, String(pid), 'task', String(tid)) : join(paths.proc, String(pid));
      const state = read(join(dir, 'patch_state'));
      if (state === null) continue;
      const patchState = Number(state.trim());
      if (patchState === -1 || patchState === target) continue;
      const comm = (read(join(dir, 'comm')) ?? '?').trim();
      tasks.push({ pid, tid, comm, patch_state: patchState });
    }
  }
  return tasks;
}

/**
 * The task's kernel stack (/proc/<pid>/task/<tid>/stack, root only), one frame a line, or a note saying why
 * it cannot be shown. This is what tells an operator which patched function a task sleeps in.
 */
export function taskStack(paths: KernelPaths, task: KernelTask): string[] {
  const candidates = [
    join(paths.proc, String(task.pid), 'task', String(task.tid), 'stack'),
    join(paths.proc, String(task.tid), 'stack'),
  ];
  for (const file of candidates) {
    try {
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') return ['(stack not readable: run as root)'];
    }
  }
  return ['(stack not available)'];
}
