// The CommonJS hook: wraps Module.prototype._compile, which every CommonJS module (and, on Node 20, every
// require(esm)) passes through with its final source — after tsx or any other transpiler that hooked in before.
import Module from 'node:module';
import { isAbsolute } from 'node:path';
import type { TransformContext } from './transform.js';
import { noteSkipped, transformModule, TS_STRIPPED } from './transform.js';

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
    // undefined: plain CommonJS (and tsx's output); '*-typescript' is Node's own type stripping, not JavaScript yet.
    const kind =
      format === undefined || format === 'commonjs'
        ? 'commonjs'
        : format === 'module' && esm
          ? 'module'
          : undefined;
    if (
      kind !== undefined &&
      typeof content === 'string' &&
      typeof filename === 'string' &&
      isAbsolute(filename)
    ) {
      content = transformModule(ctx, filename, content, kind);
    } else if (typeof format === 'string' && format.endsWith('-typescript') && typeof filename === 'string') {
      noteSkipped(ctx, filename, TS_STRIPPED);
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
