// `kernel install|uninstall`: keep a patch module loaded across reboots of the kernel it was built for.
//
// Layout (docs/kernel.md): modules live in <root>/var/lib/livepatch/kernel/<release>/<name>.ko, and one systemd
// unit, livepatch-kernel.service, inserts those of the booting kernel early at boot with plain insmod — no
// Node.js needed at boot, and a kernel the patch was not built for simply finds an empty directory.
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  existsSync,
  lstatSync,
} from 'node:fs';
import { join } from 'node:path';
import { LivepatchError } from '../errors.js';
import { requireLivepatchModule, runningRelease } from './checks.js';
import type { KernelContext, KernelOutcome } from './context.js';
import { readModule } from './modinfo.js';
import { checkName } from './sysfs.js';

export const UNIT_NAME = 'livepatch-kernel.service';

/** `$$` is systemd's escape for a literal `$`; the loop fails the unit if any module fails, so `systemctl status` shows it. */
const unitText = `# Written by 'livepatch kernel install': loads the livepatch modules installed for the booting kernel.
# Kill switch: boot with livepatch.kernel=0 on the kernel command line.
[Unit]
Description=Load installed kernel livepatch modules
DefaultDependencies=no
After=local-fs.target
Before=network-pre.target sysinit.target
Wants=network-pre.target
ConditionKernelCommandLine=!livepatch.kernel=0
ConditionPathIsDirectory=/sys/kernel/livepatch

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'rc=0; for m in /var/lib/livepatch/kernel/"$$(uname -r)"/*.ko; do [ -e "$$m" ] || continue; n=$$(basename "$$m" .ko); [ -d /sys/kernel/livepatch/"$$n" ] && continue; insmod "$$m" || rc=1; done; exit $$rc'

[Install]
WantedBy=multi-user.target
`;

export function installRoot(root: string): string {
  return join(root, 'var/lib/livepatch/kernel');
}

export interface InstalledModule {
  name: string;
  kernel: string;
  file: string;
}

/** Installed modules, for one kernel release or all of them. */
export function installedModules(root: string, release?: string): InstalledModule[] {
  const base = installRoot(root);
  let releases: string[];
  try {
    releases = release === undefined ? readdirSync(base).sort() : [release];
  } catch {
    return [];
  }
  return releases.flatMap((kernel) => {
    try {
      return readdirSync(join(base, kernel))
        .filter((f) => f.endsWith('.ko'))
        .sort()
        .map((f) => ({ name: f.slice(0, -3), kernel, file: join(base, kernel, f) }));
    } catch {
      return [];
    }
  });
}

function unitPaths(root: string): { unit: string; wants: string; link: string } {
  const dir = join(root, 'etc/systemd/system');
  return {
    unit: join(dir, UNIT_NAME),
    wants: join(dir, 'multi-user.target.wants'),
    link: join(dir, 'multi-user.target.wants', UNIT_NAME),
  };
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Copies a livepatch module into place and enables the unit, as `systemctl --root` would (a symlink). */
export function install(ctx: KernelContext, file: string): KernelOutcome {
  const info = readModule(file);
  requireLivepatchModule(info);
  if (info.release === null)
    throw new LivepatchError('EINVAL', `'${file}' has no vermagic; cannot tell which kernel it is for`, {
      file,
    });
  if (ctx.kernelRelease !== undefined && ctx.kernelRelease !== info.release) {
    throw new LivepatchError(
      'EINVAL',
      `invalid module version '${info.release}' for kernel '${ctx.kernelRelease}'`,
      {
        file,
        vermagic: info.vermagic,
        kernel: ctx.kernelRelease,
      },
    );
  }
  const name = checkName(info.name);
  const dir = join(installRoot(ctx.paths.root), info.release);
  const target = join(dir, `${name}.ko`);
  const replaced = existsSync(target);
  mkdirSync(dir, { recursive: true });
  copyFileSync(file, target);
  const u = unitPaths(ctx.paths.root);
  mkdirSync(u.wants, { recursive: true });
  writeFileSync(u.unit, unitText);
  // The link target is the path as seen from the installed system, not from --root.
  if (!exists(u.link)) symlinkSync(join('/etc/systemd/system', UNIT_NAME), u.link);
  const json = { installed: { name, kernel: info.release, file: target, replaced }, unit: u.unit };
  return {
    code: 0,
    json,
    text: [
      `installed '${name}' for kernel '${info.release}': ${target}${replaced ? ' (replaced the previous copy)' : ''}`,
      `it loads at boot through ${UNIT_NAME}${info.release === runningRelease(ctx.paths) ? '' : ' (when that kernel boots)'}`,
    ],
  };
}

/** Removes an installed module; the unit goes too when no module is left for any kernel. */
export function uninstall(ctx: KernelContext, operand: string): KernelOutcome {
  const name = checkName(operand);
  const release = ctx.kernelRelease ?? runningRelease(ctx.paths);
  const target = join(installRoot(ctx.paths.root), release, `${name}.ko`);
  if (!existsSync(target)) {
    throw new LivepatchError('ENOENT', `patch module '${name}' is not installed for kernel '${release}'`, {
      name,
      kernel: release,
    });
  }
  rmSync(target);
  const left = installedModules(ctx.paths.root);
  let unitRemoved = false;
  if (left.length === 0) {
    const u = unitPaths(ctx.paths.root);
    rmSync(u.link, { force: true });
    rmSync(u.unit, { force: true });
    unitRemoved = true;
  }
  return {
    code: 0,
    json: { uninstalled: { name, kernel: release, file: target }, unitRemoved },
    text: [
      `uninstalled '${name}' for kernel '${release}' (a loaded copy stays until 'livepatch kernel unload ${name}')`,
      ...(unitRemoved ? [`no installed patch modules left: removed ${UNIT_NAME}`] : []),
    ],
  };
}
