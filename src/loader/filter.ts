// What gets instrumented: the app's own files by default, dependencies only when named, never livepatch itself.
import { sep } from 'node:path';
import type { InstrumentRule, LoaderConfig } from './config.js';
import type { ModuleIdentity } from './module-id.js';

export type Decision = { instrument: true } | { instrument: false; reason: string; note: boolean };

function isInside(dir: string, file: string): boolean {
  return file.startsWith(dir.endsWith(sep) ? dir : dir + sep); // the root directory already ends with one
}

const NODE_MODULES = `${sep}node_modules${sep}`;

/** True when `file` belongs to the app itself: under the app root and not inside any node_modules. */
export function isAppFile(file: string, appRoot: string): boolean {
  // Asked of every module the app loads: string tests, not path.relative (which resolves both paths each time).
  const prefix = appRoot.endsWith(sep) ? appRoot : appRoot + sep;
  // The path below the root, between separators, holds no segment named node_modules.
  return file.startsWith(prefix) && !`${file.slice(prefix.length - 1)}${sep}`.includes(NODE_MODULES);
}

/** `*` matches every package, `@scope/*` every package of the scope, anything else one exact name. */
export function ruleMatches(pattern: string, packageName: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('/*')) return packageName.startsWith(pattern.slice(0, -1));
  return pattern === packageName;
}

/**
 * Decides whether the module at `file` is instrumented. The last rule matching its package wins; without one,
 * app files are in and everything else is out. `note` says whether the runtime should hear of a refusal (it
 * lists such modules as not patchable); livepatch's own files are not worth listing. `identity` is read only when a
 * rule needs the package name: pass a lazyIdentity, and a module turned down by its path costs no package.json.
 */
export function decide(file: string, identity: ModuleIdentity, config: LoaderConfig): Decision {
  if (config.selfDirs.some((d) => isInside(d, file))) {
    return { instrument: false, reason: "livepatch's own code", note: false };
  }
  let last: InstrumentRule | undefined;
  for (const rule of config.rules) if (ruleMatches(rule.pattern, identity.packageName)) last = rule;
  if (last === undefined) {
    return isAppFile(file, config.appRoot)
      ? { instrument: true }
      : {
          instrument: false,
          // Without rules the path decided: the package's name (package.json reads) is looked up only if asked.
          get reason() {
            return `package '${identity.packageName}' is not named in 'livepatch.instrument' or LIVEPATCH_INSTRUMENT`;
          },
          note: true,
        };
  }
  if (!last.exclude) return { instrument: true };
  return {
    instrument: false,
    reason: `package '${identity.packageName}' excluded by '-${last.pattern}' in ${last.from}`,
    note: true,
  };
}
