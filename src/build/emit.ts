// Writes the patch: one ES module whose default export is defineLivepatch({...}) and whose `manifest` says what
// it is — name, fixes, the source diff, target modules with their content hashes, the functions.
import { parse as acornParse } from 'acorn';
import { LivepatchError } from '../errors.js';
import type { ModulePlan } from './plan.js';
import { BINDINGS, CTX } from './rewire.js';

export interface ManifestFunc {
  module: string;
  name: string;
  sympos: number;
  change: string;
}

export interface Manifest {
  name: string;
  description?: string;
  fixes: string[];
  source: { kind: string; old: string; new: string; diff: string };
  targets: { module: string; file: string; hash: string; newHash: string }[];
  functions: ManifestFunc[];
  builder: { name: string; version: string };
  created: string;
}

export interface EmitObject {
  module: string;
  hash: string;
  plan: ModulePlan;
}

/** The patch module's text. Throws EBUILD if what it made does not parse (a builder bug, reported as such). */
export function emitPatch(name: string, manifest: Manifest, objects: EmitObject[]): string {
  const out: string[] = [];
  out.push(
    `// Live patch '${name}', made by livepatch build ${manifest.builder.version}; see the manifest below.`,
  );
  // The control server reads fix ids from this comment (src/control/patches.ts fixesOf): part of the signed bytes.
  if (manifest.fixes.length > 0) out.push(`// @livepatch-fixes ${manifest.fixes.join(', ')}`);
  out.push(`import { defineLivepatch } from 'livepatch';`, '');
  out.push(`export const manifest = ${JSON.stringify(manifest, null, 2)};`, '');
  objects.forEach((o, k) => {
    if (o.plan.shared.length === 0) return;
    // Helpers and moved constants exist once per module instance, shared by that object's replacements.
    const names = o.plan.shared.map((s) => s.name).join(', ');
    out.push(`const __lp$cache${k} = new WeakMap();`);
    out.push(`function __lp$shared${k}(${CTX}) {`);
    out.push(`  let shared = __lp$cache${k}.get(${CTX}.bindings);`);
    out.push(`  if (shared === undefined) {`);
    out.push(`    const ${BINDINGS} = ${CTX}.bindings;`);
    for (const s of o.plan.shared) out.push(`    ${s.text}`); // not re-indented: a multi-line template literal would change
    out.push(`    shared = { ${names} };`);
    out.push(`    __lp$cache${k}.set(${CTX}.bindings, shared);`);
    out.push(`  }`);
    out.push(`  return shared;`);
    out.push(`}`, '');
  });
  out.push(`export default defineLivepatch({`);
  out.push(`  name: ${JSON.stringify(name)},`);
  out.push(`  objects: [`);
  objects.forEach((o, k) => {
    out.push(`    {`);
    out.push(`      module: ${JSON.stringify(o.module)},`);
    out.push(`      hash: ${JSON.stringify(o.hash)},`);
    out.push(`      funcs: [`);
    for (const f of o.plan.funcs) {
      out.push(`        {`);
      out.push(`          name: ${JSON.stringify(f.name)},`);
      out.push(`          sympos: ${f.sympos},`);
      out.push(`          factory(${CTX}) {`);
      out.push(`            const ${BINDINGS} = ${CTX}.bindings;`);
      if (f.needs.length > 0)
        out.push(`            const { ${f.needs.join(', ')} } = __lp$shared${k}(${CTX});`);
      out.push(`            return ${f.text};`);
      out.push(`          },`);
      out.push(`        },`);
    }
    out.push(`      ],`);
    out.push(`    },`);
  });
  out.push(`  ],`);
  out.push(`});`, '');
  const text = out.join('\n');
  try {
    acornParse(text, { ecmaVersion: 'latest', sourceType: 'module' });
  } catch (e) {
    throw new LivepatchError(
      'EBUILD',
      `the generated patch does not parse (${(e as Error).message}); the changed code may use sloppy-mode syntax that an ES module cannot hold`,
    );
  }
  return text;
}
