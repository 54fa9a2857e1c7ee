// Source maps around the instrumenter: take the map a transpiler (tsx) left on the code, hand it over to be
// composed, and put the composed map back inline, so --enable-source-maps points at the original lines.
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { SourceMapV3 } from '../instrument/types.js';

// The last `//# sourceMappingURL=…` comment, alone on the last non-blank line (as emitters write it).
const MAP_COMMENT = /(?:^|\n)[ \t]*\/\/[#@][ \t]+sourceMappingURL=([^\s'"]+)[ \t]*(?:\r?\n|\s)*$/;

function parseMap(text: string): SourceMapV3 | undefined {
  const map = JSON.parse(text) as SourceMapV3;
  return map !== null && typeof map === 'object' && map.version === 3 && typeof map.mappings === 'string'
    ? map
    : undefined;
}

function readMapUrl(ref: string, file: string): SourceMapV3 | undefined {
  if (ref.startsWith('data:')) {
    const comma = ref.indexOf(',');
    const meta = ref.slice(5, comma);
    const data = ref.slice(comma + 1);
    return parseMap(
      meta.endsWith(';base64') ? Buffer.from(data, 'base64').toString('utf8') : decodeURIComponent(data),
    );
  }
  const url = new URL(ref, pathToFileURL(file));
  return url.protocol === 'file:' ? parseMap(readFileSync(fileURLToPath(url), 'utf8')) : undefined;
}

/**
 * Splits a trailing source-map comment off `code`. The comment is removed (the loader appends the composed map
 * instead) and the map returned when it could be read — inline, or a file next to the module. A map that cannot be
 * read is dropped silently: positions then refer to the code as the loader received it. With `files` false, a
 * reference to a map file is left in place unread: a process without source maps never reads it, and composing
 * it would only put a map it never uses into the code (many packages built from TypeScript ship one per module).
 */
export function takeSourceMap(
  code: string,
  file: string,
  files = true,
): { code: string; map: SourceMapV3 | undefined } {
  const m = MAP_COMMENT.exec(code);
  if (m === null || m[1] === undefined) return { code, map: undefined };
  if (!files && !m[1].startsWith('data:')) return { code, map: undefined };
  const rest = code.slice(0, m.index) + '\n';
  try {
    return { code: rest, map: readMapUrl(m[1], file) };
  } catch {
    return { code: rest, map: undefined };
  }
}

/** `code` with `map` appended as an inline base64 source map comment. */
export function withInlineMap(code: string, map: SourceMapV3): string {
  const json = Buffer.from(JSON.stringify(map), 'utf8').toString('base64');
  return `${code}${code.endsWith('\n') ? '' : '\n'}//# sourceMappingURL=data:application/json;charset=utf-8;base64,${json}\n`;
}

/**
 * tsx compiles a CommonJS `.ts` file to `__filename="<file>";(()=>{\n<body>\n})()`. Inside that arrow every
 * top-level function would be named `<anonymous>>…` and the module's bindings would not be top level, so the
 * instrumenter is given the body alone and the wrapper is put back around its output. Returns undefined when
 * the code is not in exactly that shape, or when the map has mappings on the wrapper line (it never does).
 */
export function unwrapTsxCjs(
  code: string,
  file: string,
  map: SourceMapV3 | undefined,
):
  | {
      body: string;
      map: SourceMapV3 | undefined;
      wrap: (code: string, map: SourceMapV3) => [string, SourceMapV3];
    }
  | undefined {
  const banner = `__filename=${JSON.stringify(file)};(()=>{\n`;
  if (!code.startsWith(banner)) return undefined;
  const end = code.lastIndexOf('\n})()');
  if (end < banner.length || code.slice(end + 5).trim() !== '') return undefined;
  if (map !== undefined && !map.mappings.startsWith(';')) return undefined;
  return {
    body: code.slice(banner.length, end + 1),
    // The wrapper line carries no mappings, so dropping it is dropping the first `;`.
    map: map === undefined ? undefined : { ...map, mappings: map.mappings.slice(1) },
    wrap: (out, outMap) => [
      `${banner}${out}${out.endsWith('\n') ? '' : '\n'}})()\n`,
      { ...outMap, mappings: `;${outMap.mappings}` },
    ],
  };
}
