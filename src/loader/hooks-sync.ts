// The ESM hooks on Node 22.15+ and 24: module.registerHooks, synchronous, in the main thread.
import * as nodeModule from 'node:module';
import { fileURLToPath } from 'node:url';
import { isPatchUrl, resolveSelf } from './patch-modules.js';
import { refusedByNode, transformTypeScript } from './strip-types.js';
import { transformModule, type TransformContext } from './transform.js';

export interface ResolveResult {
  url: string;
  format?: string | null | undefined;
  shortCircuit?: boolean;
}
export interface LoadResult {
  format?: string | null | undefined;
  source?: string | ArrayBuffer | ArrayBufferView | null | undefined;
  shortCircuit?: boolean;
}
export type Context = Record<string, unknown>;
interface SyncHooks {
  resolve(
    specifier: string,
    context: Context,
    next: (s: string, c?: Context) => ResolveResult,
  ): ResolveResult;
  load(url: string, context: Context, next: (u: string, c?: Context) => LoadResult): LoadResult;
}
type RegisterHooks = (hooks: SyncHooks) => { deregister(): void };

/** Decodes a load hook's source (string, Buffer or other typed array) as UTF-8. */
export function sourceText(source: string | ArrayBuffer | ArrayBufferView): string {
  if (typeof source === 'string') return source;
  const bytes = ArrayBuffer.isView(source)
    ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength)
    : new Uint8Array(source);
  return new TextDecoder().decode(bytes);
}

/** Falls back to livepatch's own copy for `livepatch` when the importer cannot resolve it (a patch module). */
export function resolveWithSelf(
  specifier: string,
  selfRoot: string,
  next: () => ResolveResult,
): ResolveResult {
  try {
    return next();
  } catch (e) {
    const url = resolveSelf(specifier, selfRoot);
    if (url === undefined) throw e;
    return { url, format: 'module', shortCircuit: true };
  }
}

const registerHooks = (hooks: Partial<SyncHooks>) =>
  (nodeModule as unknown as { registerHooks: RegisterHooks }).registerHooks(hooks as SyncHooks);

/**
 * Returns a switch for the resolve hook that finds `livepatch` from a patch module: on while at least one
 * caller holds it (a patch module being imported), off otherwise. Off matters: Node takes every require() and
 * import off its fast path, through URLs, as long as any resolve hook is registered (+7% start-up CPU for a
 * 500-module app on Node 22), and the app never needs this one.
 */
export function selfResolution(selfRoot: string): () => () => void {
  let holders = 0;
  let hook: { deregister(): void } | undefined;
  return () => {
    if (holders++ === 0) {
      hook = registerHooks({
        resolve: (specifier, context, next) =>
          resolveWithSelf(specifier, selfRoot, () => next(specifier, context)),
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--holders === 0) {
        hook?.deregister();
        hook = undefined;
      }
    };
  };
}

/**
 * Installs the load hook; returns its deregistration. ESM only: CommonJS goes through the compile hook. No
 * resolve hook: see selfResolution.
 */
export function installSyncHooks(ctx: TransformContext): () => void {
  const handle = registerHooks({
    load(url, context, next) {
      const result = next(url, context);
      const format = result.format;
      if (
        (format === 'module-typescript' || format === 'commonjs-typescript' || format === 'typescript') &&
        result.source != null &&
        url.startsWith('file:') &&
        !isPatchUrl(url) &&
        !refusedByNode(fileURLToPath(url))
      ) {
        // Node's own type stripping: the JavaScript it would run, types blanked out in place (strip-types.ts), of
        // the format Node would give it. CommonJS is instrumented here too: some of Node's paths (an entry point,
        // a .cts on 22) compile it without Module.prototype._compile; the compile hook leaves it as it is.
        const ts = transformTypeScript(
          ctx,
          fileURLToPath(url),
          sourceText(result.source),
          format === 'module-typescript'
            ? 'module'
            : format === 'commonjs-typescript'
              ? 'commonjs'
              : undefined,
        );
        return ts === undefined ? result : { ...result, format: ts.format, source: ts.code };
      }
      if (
        result.format !== 'module' ||
        result.source == null ||
        !url.startsWith('file:') ||
        isPatchUrl(url)
      ) {
        return result;
      }
      return {
        ...result,
        source: transformModule(ctx, fileURLToPath(url), sourceText(result.source), 'module'),
      };
    },
  });
  return () => handle.deregister();
}
