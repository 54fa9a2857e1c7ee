// Inserting and removing modules through the insmod/rmmod commands, with their errno put in livepatch terms.
import { execFile } from 'node:child_process';
import { LivepatchError, type LivepatchErrorCode } from '../errors.js';

interface Meaning {
  /** strerror() texts as kmod and busybox print them. */
  match: RegExp;
  code: LivepatchErrorCode;
  say: (name: string) => string;
}

/** klp_enable_patch's errors (kernel-livepatch.md §2.6) and the module loader's, as insmod reports them. */
const insmodMeanings: Meaning[] = [
  {
    match: /File exists/i,
    code: 'EEXIST',
    say: (n) => `patch '${n}' is already loaded (a module of that name exists)`,
  },
  {
    match: /Device or resource busy/i,
    code: 'EBUSY',
    say: (n) =>
      `the kernel refused '${n}': another patch is in transition, or a function it patches is claimed by another ftrace user (see dmesg)`,
  },
  {
    match: /Invalid (argument|parameters)/i,
    code: 'EINVAL',
    say: (n) =>
      `the kernel refused '${n}': it is not compatible with the installed patches, or a function it patches is missing from this kernel (see dmesg)`,
  },
  {
    match: /Invalid module format|Exec format error/i,
    code: 'EINVAL',
    say: (n) =>
      `the kernel refused '${n}': invalid module format (built for another kernel or configuration?)`,
  },
  {
    match: /Key was rejected|Required key not available/i,
    code: 'EPERM',
    say: (n) => `the kernel refused '${n}': its signature is missing or not trusted by this kernel`,
  },
  {
    match: /No such device/i,
    code: 'ENODEV',
    say: (n) =>
      `the kernel refused '${n}': a pre-patch callback failed or livepatch is not available (see dmesg)`,
  },
  {
    match: /Operation not permitted/i,
    code: 'EPERM',
    say: (n) => `the kernel refused '${n}': operation not permitted (not root, or the kernel is locked down)`,
  },
  {
    match: /Unknown symbol/i,
    code: 'ENOENT',
    say: (n) => `the kernel refused '${n}': unknown symbol in module (see dmesg)`,
  },
];

const rmmodMeanings: Meaning[] = [
  {
    match: /in use|Resource temporarily unavailable|Device or resource busy/i,
    code: 'EBUSY',
    say: (n) => `module '${n}' is in use and cannot be removed`,
  },
  {
    match: /not currently loaded|No such file or directory/i,
    code: 'ENOENT',
    say: (n) => `module '${n}' is not loaded`,
  },
  {
    match: /Operation not permitted/i,
    code: 'EPERM',
    say: (n) => `not permitted to remove module '${n}' (run as root)`,
  },
];

function run(command: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 120_000 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim();
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT' && output === '') {
        resolve({ ok: false, output: `command '${command}' not found` });
      } else {
        resolve({ ok: error === null, output });
      }
    });
  });
}

function explain(meanings: Meaning[], name: string, tool: string, output: string): LivepatchError {
  const meaning = meanings.find((m) => m.match.test(output));
  const details = { module: name, [tool]: output };
  if (meaning) return new LivepatchError(meaning.code, meaning.say(name), details);
  return new LivepatchError('EINVAL', `${tool} failed for '${name}': ${output || 'no output'}`, details);
}

/** Inserts the module file. klp_enable_patch runs inside it, so success means the patch is registered and its transition started. */
export async function insertModule(insmod: string, file: string, name: string): Promise<void> {
  const r = await run(insmod, [file]);
  if (!r.ok) throw explain(insmodMeanings, name, 'insmod', r.output);
}

/** Removes the module by name. Only possible once its patch was disabled (or replaced) and freed, and never after a force. */
export async function removeModule(rmmod: string, name: string): Promise<void> {
  const r = await run(rmmod, [name]);
  if (!r.ok) throw explain(rmmodMeanings, name, 'rmmod', r.output);
}
