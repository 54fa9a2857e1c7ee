// TypeScript run by Node itself (`node app.ts`: type stripping, on by default since 22.18 and 23.6). Node hands the
// hooks the TypeScript source; the loader strips the types first, with Node's own stripper in the mode Node runs
// it in, 'strip', which replaces every type annotation with spaces. The JavaScript has the same lines and columns
// as the file, so instrumented code keeps both, as a file run through tsx keeps them through its source map.
import * as nodeModule from 'node:module';
import { sep } from 'node:path';
import { Script } from 'node:vm';
import type { ModuleFormat } from '../instrument/types.js';
import { noteSkipped, transformDerived, type Derived, type TransformContext } from './transform.js';

type Strip = (code: string, options: { mode: 'strip' | 'transform' }) => string;

/** Why Node's type stripping is left alone where stripTypes cannot run it, or undefined where it can. */
export function cannotStrip(): string | undefined {
  if (typeof (nodeModule as { stripTypeScriptTypes?: unknown }).stripTypeScriptTypes !== 'function')
    return "TypeScript run by Node's own type stripping is not instrumented on this Node.js (module.stripTypeScriptTypes is 22.13+); run it through tsx ('--import tsx' first)";
  // --experimental-transform-types rewrites enums and namespaces: lines can move, and the loader has no map.
  if ((process.features as { typescript?: unknown }).typescript === 'transform')
    return `TypeScript under --experimental-transform-types is not instrumented; run it through tsx ('--import tsx' first)`;
  return undefined;
}

/**
 * True for a file Node refuses to strip (ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING): one under node_modules. The
 * loader leaves it to Node, which then refuses it as it does without livepatch.
 */
export function refusedByNode(file: string): boolean {
  return file.includes(`${sep}node_modules${sep}`);
}

/** Why a TypeScript module is left alone when it has syntax that stripping cannot run. */
export const TS_UNSTRIPPABLE =
  'TypeScript with syntax that type stripping cannot run (an enum, a namespace, a parameter property) is not instrumented';

/** Why an ES module in a .ts file of undecided type is left alone where only the compile hook sees it. */
export const TS_DETECTED_ESM =
  'TypeScript detected as an ES module while required (no load hook saw it first) is not instrumented';

const unstrippable = new Set<string>();

/** True the first time `file` is reported as unstrippable: Node's hook and compile paths may both see it. */
export function firstFailure(file: string): boolean {
  if (unstrippable.has(file)) return false;
  unstrippable.add(file);
  return true;
}

let warned = false;

/**
 * The JavaScript Node runs for TypeScript `source` (its own stripper, 'strip' mode), or undefined where it cannot
 * (cannotStrip says why) or the source has syntax that only transforming handles (an enum): Node then loads the
 * file itself and reports the error as without livepatch. The public stripper warns once per process that it is
 * experimental: that warning is about livepatch's use of it, not the app's, and is not passed on.
 */
export function stripTypes(source: string): string | undefined {
  if (cannotStrip() !== undefined) return undefined;
  const strip = (nodeModule as { stripTypeScriptTypes?: Strip }).stripTypeScriptTypes as Strip;
  if (warned) {
    try {
      return strip(source, { mode: 'strip' });
    } catch {
      return undefined;
    }
  }
  warned = true;
  const emit = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: unknown, ...rest: unknown[]) {
    const text = typeof warning === 'string' ? warning : (warning as Error | undefined)?.message;
    if (typeof text === 'string' && text.startsWith('stripTypeScriptTypes ')) return;
    return Reflect.apply(emit, this, [warning, ...rest]);
  } as typeof process.emitWarning;
  try {
    return strip(source, { mode: 'strip' });
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emit;
  }
}

// The errors that make Node's syntax detection run a file of undecided type as an ES module (its own list).
const ESM_ONLY =
  /^(?:Cannot use import statement outside a module|Unexpected token 'export'|Cannot use 'import\.meta' outside a module|await is only valid in async functions and the top level bodies of modules)/;

/**
 * For stripped code of format 'typescript' (a .ts file in a package.json with no "type"): whether Node's syntax
 * detection runs it as an ES module, i.e. it does not compile as a script for one of ESM_ONLY's reasons.
 */
export function detectsAsModule(js: string): boolean {
  try {
    // Compiled, never run; as a function body, as CommonJS is (a top-level `return` is not ESM).
    new Script(`(function(){${js}\n})`);
    return false;
  } catch (e) {
    return e instanceof SyntaxError && ESM_ONLY.test(e.message);
  }
}

/**
 * Node's stripping as the loader's cache sees it: code made from the file's text alone, so an entry is keyed on the
 * file and the stripper's version, and a warm start strips nothing (Node's own compile cache spares it the same).
 */
export const STRIPPED: Derived = {
  tag: `node-strip:${process.versions['amaro'] ?? process.version}`,
  make: stripTypes,
};

/**
 * The instrumented JavaScript for TypeScript `text` at `file` and the format to run it as, as Node's type stripping
 * runs it: `format` is the one Node gave ('module' for .mts or "type": "module", 'commonjs' likewise), undefined when
 * the syntax decides (a .ts under no "type"). Undefined when it cannot be stripped (cannotStrip, TS_UNSTRIPPABLE):
 * the caller leaves the file to Node, after noting why once. Never throws.
 */
export function transformTypeScript(
  ctx: TransformContext,
  file: string,
  text: string,
  format: ModuleFormat | undefined,
): { code: string; format: ModuleFormat } | undefined {
  if (format === undefined) {
    // A warm start finds the entry of the format it was stored as, without stripping to learn which.
    for (const f of ['module', 'commonjs'] as const) {
      const code = transformDerived(ctx, file, text, f, STRIPPED, true);
      if (code !== undefined) return { code, format: f };
    }
  }
  let derived = STRIPPED;
  if (format === undefined) {
    const js = stripTypes(text);
    if (js === undefined) return leftToNode(ctx, file);
    format = detectsAsModule(js) ? 'module' : 'commonjs';
    derived = { tag: STRIPPED.tag, make: () => js }; // stripped once
  }
  const code = transformDerived(ctx, file, text, format, derived);
  return code === undefined ? leftToNode(ctx, file) : { code, format };
}

function leftToNode(ctx: TransformContext, file: string): undefined {
  if (firstFailure(file)) noteSkipped(ctx, file, cannotStrip() ?? TS_UNSTRIPPABLE);
  return undefined;
}
