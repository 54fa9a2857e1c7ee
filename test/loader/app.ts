// Helpers for the loader's integration tests: run a temporary app under the loader and read what it registered.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { registerEntry, spawnNode } from '../helpers.js';

/** Source to paste at the end of an app's entry: prints the registry's modules and notes as one `LP {…}` line. */
export const REPORT = `{ const r = globalThis[Symbol.for('livepatch.registry')];
console.log('LP ' + JSON.stringify(r === undefined ? null : {
  modules: r.instances.map((i) => i.id),
  hashes: Object.fromEntries(r.instances.map((i) => [i.id, i.hash])),
  funcs: Object.fromEntries(r.instances.map((i) => [i.id, i.symbols().funcs.map((f) => f.name)])),
  notes: r.notes.map((n) => [n.id, n.status, n.reason]) })); }
`;

export interface Report {
  modules: string[];
  hashes: Record<string, string>;
  /** Function names of each module's symbol table. */
  funcs: Record<string, string[]>;
  notes: [string, string, string][];
}

export interface AppRun {
  code: number | string;
  out: string;
  err: string;
  /** The parsed `LP` line, null when the app had no registry, undefined when it printed none. */
  lp: Report | null | undefined;
  /** stderr lines starting with `livepatch:` */
  warnings: string[];
}

/** An environment without the caller's livepatch settings, with a private control and install dir under `dir`. */
export function cleanEnv(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_DEBUG' || k.startsWith('LIVEPATCH_') || k.startsWith('NODE_TEST'))
      continue;
    env[k] = v;
  }
  const run = join(dir, '.lp-run');
  mkdirSync(run, { recursive: true, mode: 0o700 });
  return {
    ...env,
    XDG_RUNTIME_DIR: run,
    LIVEPATCH_INSTALL_DIR: join(run, 'installed'),
    LIVEPATCH_CACHE_DIR: join(run, 'cache'),
    ...extra,
  };
}

/** Runs `node --import <register> ...args` in `dir`; `preload: false` leaves the --import out (NODE_OPTIONS form). */
export async function runApp(
  dir: string,
  args: string[],
  extra: Record<string, string> = {},
  options: { preload?: boolean; before?: string[] } = {},
): Promise<AppRun> {
  const pre = options.preload === false ? [] : ['--import', registerEntry];
  const child = spawnNode([...(options.before ?? []), ...pre, ...args], {
    cwd: dir,
    env: cleanEnv(dir, extra),
  });
  const timer = setTimeout(() => child.kill(), 30_000);
  const code = await child.exited;
  clearTimeout(timer);
  const out = child.stdout();
  const err = child.stderr();
  const line = /^LP (.*)$/m.exec(out)?.[1];
  return {
    code,
    out,
    err,
    lp: line === undefined ? undefined : (JSON.parse(line) as Report | null),
    warnings: err.split('\n').filter((l) => l.startsWith('livepatch:')),
  };
}
