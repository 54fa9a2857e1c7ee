// Applies a unified or git diff to a copy of a tree, as `patch -p1` would, refusing any hunk that does not fit.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LivepatchError } from '../errors.js';

interface Hunk {
  oldStart: number;
  lines: string[]; // each with its ' ', '-' or '+' marker
  noEolOld: boolean;
  noEolNew: boolean;
}

interface FilePatch {
  oldPath: string | null; // null: /dev/null (a new file)
  newPath: string | null; // null: a deleted file
  hunks: Hunk[];
}

function cleanPath(p: string): string | null {
  const path = p.split('\t')[0]?.trim() ?? '';
  return path === '/dev/null' ? null : path.replace(/^"|"$/g, '');
}

/** Parses the file sections and hunks of a diff. Throws EINVAL on a malformed hunk header. */
export function parseDiff(text: string): FilePatch[] {
  const lines = text.split('\n');
  const out: FilePatch[] = [];
  let cur: FilePatch | null = null;
  let hunk: Hunk | null = null;
  let oldLeft = 0;
  let newLeft = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (hunk && (oldLeft > 0 || newLeft > 0)) {
      const m = line[0] ?? ' ';
      if (line === '' && i === lines.length - 1) break;
      if (m === '\\') continue;
      hunk.lines.push(line === '' ? ' ' : line);
      if (m !== '+') oldLeft--;
      if (m !== '-') newLeft--;
      if (lines[i + 1]?.startsWith('\\')) {
        if (m === '-') hunk.noEolOld = true;
        else if (m === '+') hunk.noEolNew = true;
        else hunk.noEolOld = hunk.noEolNew = true;
      }
      continue;
    }
    if (line.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ')) {
      cur = {
        oldPath: cleanPath(line.slice(4)),
        newPath: cleanPath((lines[i + 1] as string).slice(4)),
        hunks: [],
      };
      out.push(cur);
      hunk = null;
      i++;
      continue;
    }
    if (line.startsWith('@@')) {
      const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
      if (!m || !cur) throw new LivepatchError('EINVAL', `malformed diff: bad hunk header '${line}'`);
      hunk = { oldStart: Number(m[1]), lines: [], noEolOld: false, noEolNew: false };
      oldLeft = m[2] === undefined ? 1 : Number(m[2]);
      newLeft = m[4] === undefined ? 1 : Number(m[4]);
      cur.hunks.push(hunk);
    }
  }
  return out;
}

function strip(path: string, n: number): string {
  return path.split('/').slice(n).join('/');
}

/**
 * Applies `diffText` to the tree at `dir` in place (give it a copy). Tries -p1 (git's a/ b/ prefixes), then -p0.
 * Returns the paths it changed. Throws EBUILD naming the file and hunk that does not apply.
 */
export function applyDiff(dir: string, diffText: string): string[] {
  const files = parseDiff(diffText);
  if (files.length === 0) throw new LivepatchError('EINVAL', 'the diff has no file changes');
  const level = files.every((f) => {
    const p = f.oldPath ?? f.newPath;
    return p !== null && (f.oldPath === null || isFile(join(dir, strip(p, 1))));
  })
    ? 1
    : 0;
  const changed: string[] = [];
  for (const f of files) {
    const rel = strip((f.newPath ?? f.oldPath) as string, level);
    const path = join(dir, rel);
    if (f.newPath === null) {
      rmSync(path, { force: true });
      changed.push(rel);
      continue;
    }
    const text = f.oldPath === null ? '' : readFile(path, rel);
    const eol = text.endsWith('\n') || text === '';
    let lines = text === '' ? [] : (eol ? text.slice(0, -1) : text).split('\n');
    let offset = 0;
    let noEol = !eol;
    f.hunks.forEach((h, k) => {
      const oldLines = h.lines.filter((l) => l[0] !== '+').map((l) => l.slice(1));
      const newLines = h.lines.filter((l) => l[0] !== '-').map((l) => l.slice(1));
      const want = Math.max(0, h.oldStart - 1 + offset - (oldLines.length === 0 ? -1 : 0));
      const at = findBlock(lines, oldLines, oldLines.length === 0 ? Math.min(want, lines.length) : want);
      if (at < 0)
        throw new LivepatchError(
          'EBUILD',
          `hunk #${k + 1} of '${rel}' does not apply at line ${h.oldStart}`,
          {
            file: rel,
            hunk: k + 1,
          },
        );
      lines = [...lines.slice(0, at), ...newLines, ...lines.slice(at + oldLines.length)];
      offset += newLines.length - oldLines.length + (at - want);
      if (at + newLines.length >= lines.length) noEol = h.noEolNew;
    });
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, lines.join('\n') + (noEol || lines.length === 0 ? '' : '\n'));
    changed.push(rel);
  }
  return changed;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function readFile(path: string, rel: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new LivepatchError('EBUILD', `the diff changes '${rel}', which is not in the source tree`, {
      file: rel,
    });
  }
}

/** The index where `block` occurs in `lines`, nearest to `near` (hunks drift when earlier code moved). */
function findBlock(lines: string[], block: string[], near: number): number {
  const fits = (at: number) =>
    at >= 0 && at + block.length <= lines.length && block.every((l, j) => lines[at + j] === l);
  for (let d = 0; d <= lines.length; d++) {
    if (fits(near - d)) return near - d;
    if (fits(near + d)) return near + d;
  }
  return -1;
}
