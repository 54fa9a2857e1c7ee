// Test helper: a sysfs/proc-shaped tree in a temp dir, a small simulation of the kernel's transition rules on it,
// fake insmod/rmmod commands, and minimal kernel-module ELF files.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fixture } from '../helpers.js';

export interface FakePatch {
  name: string;
  enabled?: boolean;
  transition?: boolean;
  /** `null`: the kernel is older than 6.11 and has no such file. */
  replace?: boolean | null;
  stack_order?: number | null;
  objects?: { name: string; patched?: boolean | null; funcs: string[] }[];
}

export interface FakeTask {
  pid: number;
  comm: string;
  patch_state?: number;
  stack?: string[];
  /** Extra threads, each with the same comm; they live under /proc/<pid>/task/<tid>. */
  threads?: number[];
}

export interface FakeOptions {
  livepatch?: boolean;
  release?: string;
  /** CapEff of /proc/self/status; the default has every capability. */
  capEff?: string;
  sigEnforce?: boolean;
}

export class FakeSystem {
  readonly dir: string;
  readonly sysfs: string;
  readonly proc: string;
  readonly root: string;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: FakeOptions = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'lp-kernel-'));
    this.sysfs = join(this.dir, 'sys');
    this.proc = join(this.dir, 'proc');
    this.root = join(this.dir, 'root');
    if (opts.livepatch ?? true) mkdirSync(join(this.sysfs, 'kernel/livepatch'), { recursive: true });
    mkdirSync(this.root, { recursive: true });
    this.write('proc/sys/kernel/osrelease', `${opts.release ?? '6.1.0-56-amd64'}\n`);
    this.write('proc/self/status', `Name:\tnode\nCapEff:\t${opts.capEff ?? '000001ffffffffff'}\n`);
    this.write('sys/module/module/parameters/sig_enforce', opts.sigEnforce ? 'Y\n' : 'N\n');
  }

  /** The options every command needs to look at this tree instead of the host's. */
  get args(): string[] {
    return ['--sysfs-root', this.sysfs, '--proc-root', this.proc, '--root', this.root, '--poll-ms', '10'];
  }

  path(rel: string): string {
    return join(this.dir, rel);
  }

  write(rel: string, text: string): void {
    mkdirSync(dirname(this.path(rel)), { recursive: true });
    writeFileSync(this.path(rel), text);
  }

  read(rel: string): string {
    return readFileSync(this.path(rel), 'utf8');
  }

  exists(rel: string): boolean {
    return existsSync(this.path(rel));
  }

  addPatch(p: FakePatch): void {
    const dir = `sys/kernel/livepatch/${p.name}`;
    const bit = (b: boolean) => (b ? '1\n' : '0\n');
    this.write(`${dir}/enabled`, bit(p.enabled ?? true));
    this.write(`${dir}/transition`, bit(p.transition ?? false));
    this.write(`${dir}/force`, '');
    if (p.replace !== null) this.write(`${dir}/replace`, bit(p.replace ?? false));
    if (p.stack_order !== null) this.write(`${dir}/stack_order`, `${p.stack_order ?? 1}\n`);
    for (const o of p.objects ?? [{ name: 'vmlinux', funcs: ['cmdline_proc_show,1'] }]) {
      if (o.patched !== null) this.write(`${dir}/${o.name}/patched`, bit(o.patched ?? true));
      for (const f of o.funcs) mkdirSync(this.path(`${dir}/${o.name}/${f}`), { recursive: true });
    }
    // An enabled patch holds a reference on its own module (klp_enable_patch: try_module_get).
    this.addModule(p.name, 1);
  }

  addModule(name: string, refcnt: number): void {
    this.write(`sys/module/${name}/refcnt`, `${refcnt}\n`);
  }

  addTask(t: FakeTask): void {
    const dirs = t.threads
      ? [t.pid, ...t.threads].map((tid) => `proc/${t.pid}/task/${tid}`)
      : [`proc/${t.pid}`];
    for (const d of dirs) {
      this.write(`${d}/comm`, `${t.comm}\n`);
      this.write(`${d}/patch_state`, `${t.patch_state ?? -1}\n`);
      this.write(`${d}/stack`, (t.stack ?? ['[<0>] do_nanosleep+0x7c/0x150']).map((l) => `${l}\n`).join(''));
    }
  }

  /** Every patch_state file, keyed by its path relative to the tree. */
  private taskStates(): string[] {
    const files: string[] = [];
    const procDir = this.path('proc');
    for (const pid of readdirSync(procDir).filter((e) => /^\d+$/.test(e))) {
      const tasks = join(procDir, pid, 'task');
      if (existsSync(tasks))
        for (const tid of readdirSync(tasks)) files.push(join(tasks, tid, 'patch_state'));
      else files.push(join(procDir, pid, 'patch_state'));
    }
    return files.filter((f) => existsSync(f));
  }

  /**
   * Runs the kernel's transition rules on the tree every few ms (kernel-livepatch.md §2–§4): a changed
   * `enabled` starts (or, during a transition, reverses) a transition; tasks not in `stuck` switch at once;
   * `force` switches the rest; completion clears `transition` and, when unpatching, frees the patch (its
   * directory goes, its module reference is dropped unless it was forced).
   */
  startKernel(stuck: number[] = []): void {
    const known = new Map<string, boolean>();
    const forced = new Set<string>();
    const stuckFiles = () =>
      this.taskStates().filter((f) => stuck.some((pid) => f.includes(`/proc/${pid}/`)));
    const base = this.path('sys/kernel/livepatch');
    // What is in the tree now is the kernel's state; a later change to 'enabled' is a write by the command.
    for (const name of existsSync(base) ? readdirSync(base) : []) {
      known.set(name, readFileSync(join(base, name, 'enabled'), 'utf8').trim() === '1');
    }
    const tick = () => {
      if (!existsSync(base)) return;
      for (const name of readdirSync(base)) {
        const dir = join(base, name);
        let enabled: boolean;
        let transition: boolean;
        try {
          const e = readFileSync(join(dir, 'enabled'), 'utf8').trim();
          const tr = readFileSync(join(dir, 'transition'), 'utf8').trim();
          // A file caught between truncate and write reads empty: look again on the next tick.
          if (e === '' || tr === '') continue;
          enabled = e === '1';
          transition = tr === '1';
        } catch {
          continue;
        }
        const target = enabled ? '1' : '0';
        const before = known.get(name);
        known.set(name, enabled);
        if (before !== undefined && before !== enabled && !transition) {
          writeFileSync(join(dir, 'transition'), '1\n');
          for (const f of this.taskStates()) writeFileSync(f, enabled ? '0\n' : '1\n');
          transition = true;
        }
        if (!transition) continue;
        const forceFile = join(dir, 'force');
        const forcing = existsSync(forceFile) && readFileSync(forceFile, 'utf8').trim() === '1';
        if (forcing) {
          writeFileSync(forceFile, '');
          if (!enabled) forced.add(name);
        }
        const blocked = forcing ? [] : stuckFiles();
        for (const f of this.taskStates()) if (!blocked.includes(f)) writeFileSync(f, `${target}\n`);
        if (this.taskStates().some((f) => readFileSync(f, 'utf8').trim() !== target)) continue;
        for (const f of this.taskStates()) writeFileSync(f, '-1\n');
        writeFileSync(join(dir, 'transition'), '0\n');
        if (!enabled) {
          rmSync(dir, { recursive: true, force: true });
          known.delete(name);
          if (!forced.has(name) && existsSync(this.path(`sys/module/${name}`))) this.addModule(name, 0);
        }
      }
    };
    this.timer = setInterval(tick, 5);
  }

  /** Writes fake insmod/rmmod wrappers bound to this tree and returns the options that select them. */
  modTools(insmod: { transition?: boolean; error?: string } = {}): string[] {
    const extra = [
      insmod.transition ? '--transition' : '',
      insmod.error ? `--error '${insmod.error}'` : '',
    ].join(' ');
    const sh = (script: string, more: string) =>
      `#!/bin/sh\nexec '${process.execPath}' '${fixture('kernel', script)}' --sysfs '${this.sysfs}' ${more} "$@"\n`;
    this.write('bin/insmod', sh('fake-insmod.mjs', `--proc '${this.proc}' ${extra}`));
    this.write('bin/rmmod', sh('fake-rmmod.mjs', ''));
    chmodSync(this.path('bin/insmod'), 0o755);
    chmodSync(this.path('bin/rmmod'), 0o755);
    return ['--insmod', this.path('bin/insmod'), '--rmmod', this.path('bin/rmmod')];
  }

  cleanup = (): void => {
    if (this.timer) clearInterval(this.timer);
    rmSync(this.dir, { recursive: true, force: true });
  };
}

/**
 * A minimal ELF64 relocatable holding only what a module reader needs: a .modinfo section of "key=value\0"
 * strings and the section-name table; optionally a PKCS#7-style signature trailer as sign-file appends it.
 */
export function makeModule(
  modinfo: [string, string][],
  opts: { signed?: boolean; bigEndian?: boolean; section?: string } = {},
): Buffer {
  const info = Buffer.from(modinfo.map(([k, v]) => `${k}=${v}\0`).join(''));
  const sectionName = opts.section ?? '.modinfo';
  const shstrtab = Buffer.from(`\0${sectionName}\0.shstrtab\0`);
  const infoOff = 64;
  const strOff = infoOff + info.length;
  const shoff = (strOff + shstrtab.length + 7) & ~7;
  const elf = Buffer.alloc(shoff + 3 * 64);
  const le = !opts.bigEndian;
  const u16 = (v: number, o: number) => (le ? elf.writeUInt16LE(v, o) : elf.writeUInt16BE(v, o));
  const u32 = (v: number, o: number) => (le ? elf.writeUInt32LE(v, o) : elf.writeUInt32BE(v, o));
  const u64 = (v: number, o: number) =>
    le ? elf.writeBigUInt64LE(BigInt(v), o) : elf.writeBigUInt64BE(BigInt(v), o);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, le ? 1 : 2, 1], 0);
  u16(1, 16); // ET_REL
  u16(62, 18); // EM_X86_64
  u32(1, 20);
  u64(shoff, 0x28);
  u16(64, 0x34);
  u16(64, 0x3a);
  u16(3, 0x3c);
  u16(2, 0x3e);
  info.copy(elf, infoOff);
  shstrtab.copy(elf, strOff);
  const section = (i: number, name: number, type: number, off: number, size: number) => {
    const h = shoff + i * 64;
    u32(name, h);
    u32(type, h + 4);
    u64(off, h + 24);
    u64(size, h + 32);
    u64(1, h + 48);
  };
  section(1, 1, 1, infoOff, info.length); // .modinfo, SHT_PROGBITS
  section(2, sectionName.length + 2, 3, strOff, shstrtab.length); // .shstrtab, SHT_STRTAB
  if (!opts.signed) return elf;
  const sig = Buffer.alloc(256, 0xab);
  const trailer = Buffer.alloc(12);
  trailer[2] = 2; // PKEY_ID_PKCS7
  trailer.writeUInt32BE(sig.length, 8);
  return Buffer.concat([elf, sig, trailer, Buffer.from('~Module signature appended~\n')]);
}

/** modinfo of a livepatch module built for `release`, as modpost writes it. */
export function livepatchModinfo(name: string, release = '6.1.0-56-amd64'): [string, string][] {
  return [
    ['livepatch', 'Y'],
    ['description', 'test patch'],
    ['license', 'GPL'],
    ['depends', ''],
    ['retpoline', 'Y'],
    ['name', name],
    ['vermagic', `${release} SMP preempt mod_unload modversions `],
  ];
}

export interface KernelRun {
  code: number;
  stdout: string;
  stderr: string;
  json: () => any;
}

/** Runs `livepatch kernel …` in this process (the same entry the CLI uses) and captures its output; `onStderr` sees progress as it comes. */
export async function kernel(args: string[], onStderr?: (stderr: string) => void): Promise<KernelRun> {
  const { runKernel } = await import('../../src/kernel/index.js');
  let stdout = '';
  let stderr = '';
  const code = await runKernel(args, {
    stdout: (s) => (stdout += s),
    stderr: (s) => {
      stderr += s;
      onStderr?.(stderr);
    },
  });
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}
