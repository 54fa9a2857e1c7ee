// Which files of a published package Node can load: everything reachable from its entry points (main, exports,
// bin) through relative require/import. Bundles for browsers and bundlers (dist/*.min.js, "module") are not.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

interface PackageJson {
  name?: unknown;
  main?: unknown;
  exports?: unknown;
  bin?: unknown;
}

function targets(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) targets(x, out);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) targets(x, out);
}

// Over-approximates on purpose (a specifier in a comment counts): including a file too many costs a comparison,
// missing one would leave loaded code unpatched.
const SPECIFIER =
  /\brequire\s*\(\s*(['"])([^'"\n]+)\1\s*\)|\bfrom\s*(['"])([^'"\n]+)\3|\bimport\s*\(?\s*(['"])([^'"\n]+)\5/g;

/**
 * The files (paths in the tree, forward slashes) reachable from the package's entry points, or null when the
 * tree has no package.json (then every file counts).
 */
export function reachableFiles(root: string, files: Map<string, string>): Set<string> | null {
  let pkg: PackageJson;
  try {
    pkg = JSON.parse(readFileSync(posix.join(root, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return null;
  }
  const starts: string[] = [];
  targets(pkg.exports, starts);
  targets(pkg.bin, starts);
  starts.push(typeof pkg.main === 'string' ? pkg.main : 'index.js');
  const self = typeof pkg.name === 'string' ? `${pkg.name}/` : null;
  const seen = new Set<string>();
  const queue: string[] = [];
  const resolveFrom = (fromDir: string, spec: string): void => {
    let s = spec;
    if (self !== null && s.startsWith(self)) s = `./${s.slice(self.length)}`;
    if (!s.startsWith('./') && !s.startsWith('../') && s !== '.' && s !== '..') return;
    const base = posix.normalize(posix.join(fromDir, s));
    if (base.includes('*')) {
      // An exports pattern ("./*": "./lib/*.js"): every file it can match.
      const re = new RegExp(
        `^${base
          .split('*')
          .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      );
      for (const rel of files.keys()) if (re.test(rel)) queue.push(rel);
      return;
    }
    for (const c of [
      base,
      `${base}.js`,
      `${base}.cjs`,
      `${base}.mjs`,
      `${base}/index.js`,
      `${base}/index.cjs`,
      `${base}/index.mjs`,
    ])
      if (files.has(c)) {
        queue.push(c);
        return;
      }
    // A script without an extension (a `bin` entry such as bin/tsc): not a module to patch, but what it loads is.
    if (fromDir === '.' && !scripts.has(base)) {
      scripts.add(base);
      try {
        scan(base, readFileSync(posix.join(root, base), 'utf8'));
      } catch {}
    }
  };
  const scripts = new Set<string>();
  const scan = (rel: string, text: string): void => {
    for (const m of text.matchAll(SPECIFIER))
      resolveFrom(posix.dirname(rel), (m[2] ?? m[4] ?? m[6]) as string);
  };
  for (const s of starts) resolveFrom('.', s.startsWith('.') ? s : `./${s}`);
  while (queue.length > 0) {
    const rel = queue.pop() as string;
    if (seen.has(rel)) continue;
    seen.add(rel);
    let text: string;
    try {
      text = readFileSync(files.get(rel) as string, 'utf8');
    } catch {
      continue;
    }
    scan(rel, text);
  }
  return seen;
}
