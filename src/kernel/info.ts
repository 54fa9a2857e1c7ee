// `kernel info MODULE.ko`: what a module file is, read from its ELF without modinfo, checked against this kernel.
import { isSigEnforced, runningRelease } from './checks.js';
import type { KernelContext, KernelOutcome } from './context.js';
import { readModule } from './modinfo.js';
import { isModuleLoaded, readPatch } from './sysfs.js';

/** Keys shown first, in this order; any other .modinfo key follows. */
const shownFirst = [
  'name',
  'description',
  'livepatch',
  'vermagic',
  'license',
  'author',
  'version',
  'srcversion',
];

export function info(ctx: KernelContext, file: string): KernelOutcome {
  const mod = readModule(file);
  const kernel = runningRelease(ctx.paths);
  const matches = mod.release === kernel;
  const loaded = isModuleLoaded(ctx.paths, mod.name);
  const patch = readPatch(ctx.paths, mod.name);
  const sigEnforced = isSigEnforced(ctx.paths);
  const text = [`Patch information for ${file}:`];
  const keys = [
    ...shownFirst.filter((k) => k in mod.modinfo),
    ...Object.keys(mod.modinfo).filter((k) => !shownFirst.includes(k)),
  ];
  for (const k of keys) for (const v of mod.modinfo[k] ?? []) text.push(`  ${`${k}:`.padEnd(14)}${v}`);
  text.push(
    '',
    `livepatch module: ${mod.livepatch ? 'yes' : "no (no 'livepatch: Y' in modinfo)"}`,
    `running kernel:   ${kernel} (${matches ? 'vermagic matches' : `does not match '${mod.release ?? 'none'}'`})`,
    `signed:           ${mod.signature ? `yes (${mod.signature.sig_len}-byte ${mod.signature.id_type === 2 ? 'PKCS#7' : `type ${mod.signature.id_type}`} signature)` : 'no'}${sigEnforced && !mod.signature ? ' — this kernel refuses unsigned modules' : ''}`,
    `loaded:           ${loaded ? (patch ? `yes, patch '${mod.name}' is ${patch.enabled ? 'enabled' : 'disabled'}` : 'yes, no patch in sysfs (disabled or replaced)') : 'no'}`,
  );
  return {
    code: 0,
    json: {
      file,
      name: mod.name,
      livepatch: mod.livepatch,
      vermagic: mod.vermagic,
      release: mod.release,
      kernel,
      vermagicMatches: matches,
      signed: mod.signature !== null,
      signature: mod.signature,
      sigEnforced,
      loaded,
      patch,
      modinfo: mod.modinfo,
    },
    text,
  };
}
