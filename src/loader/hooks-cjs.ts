// The CommonJS hook: wraps Module.prototype._compile, which every CommonJS module (and, on Node 20, every
// require(esm)) passes through with its final source — after tsx or any other transpiler that hooked in before.
import Module from 'node:module';
import { isAbsolute } from 'node:path';
import type { TransformContext } from './transform.js';
import {
  cannotStrip,
  detectsAsModule,
  firstFailure,
  refusedByNode,
  stripTypes,
  TS_DETECTED_ESM,
  TS_UNSTRIPPABLE,
} from './strip-types.js';
import { noteSkipped, transformModule } from './transform.js';

type Compile = (
  this: unknown,
  content: string,
  filename: string,
  format?: string,
  ...rest: unknown[]
) => unknown;
const proto = (Module as unknown as { prototype: { _compile: Compile } }).prototype;

/**
 * Installs the hook. `esm` says whether it also instruments require(esm) (format 'module'), which it must only
 * when no ESM hook sees those modules. Returns an uninstall that restores the original only if nobody has
 * wrapped _compile since (undoing theirs would silently drop their hook).
 */
export function installCompileHook(ctx: TransformContext, esm: boolean): () => void {
  const original = proto._compile;
  const wrapped: Compile = function (this: unknown, content, filename, format, ...rest) {
    // Node's own type stripping hands over TypeScript ('commonjs-typescript'; 'typescript' where the package has
    // no "type"; 'module-typescript' for require(esm)) where no load hook made it JavaScript first: strip it as
    // Node would (strip-types.ts); then it is JavaScript of that format, or undecided, as Node's own detection
    // then decides (only CommonJS is instrumented here).
    let leave = false;
    if (
      (format === 'commonjs-typescript' ||
        format === 'typescript' ||
        (format === 'module-typescript' && esm)) &&
      typeof content === 'string' &&
      typeof filename === 'string' &&
      !refusedByNode(filename)
    ) {
      const js = stripTypes(content);
      if (js === undefined) {
        if (firstFailure(filename)) noteSkipped(ctx, filename, cannotStrip() ?? TS_UNSTRIPPABLE);
      } else if (format === 'typescript') {
        content = js;
        format = undefined;
        leave = detectsAsModule(js);
        if (leave) noteSkipped(ctx, filename, TS_DETECTED_ESM);
      } else {
        content = js;
        format = format === 'commonjs-typescript' ? 'commonjs' : 'module';
      }
    }
    // undefined: plain CommonJS (and tsx's output).
    const kind =
      format === undefined || format === 'commonjs'
        ? 'commonjs'
        : format === 'module' && esm
          ? 'module'
          : undefined;
    if (
      !leave &&
      kind !== undefined &&
      typeof content === 'string' &&
      typeof filename === 'string' &&
      isAbsolute(filename)
    ) {
      content = transformModule(ctx, filename, content, kind);
    }
    return Reflect.apply(
      original,
      this,
      [content, filename, format, ...rest].slice(0, Math.max(2, arguments.length)),
    );
  };
  proto._compile = wrapped;
  return () => {
    if (proto._compile === wrapped) proto._compile = original;
  };
}
