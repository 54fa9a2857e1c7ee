// Source maps for instrumented code: base64 VLQ, our line-preserving map, and its composition with an input map.
import { Buffer } from 'node:buffer';
import type { SourceMapV3 } from './types.js';
import type { Edit } from './emit.js';
import { lineIndex } from './parse.js';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

export function encodeVlq(value: number): string {
  let v = value < 0 ? (-value << 1) | 1 : value << 1;
  let out = '';
  do {
    let digit = v & 31;
    v >>>= 5;
    if (v > 0) digit |= 32;
    out += B64[digit];
  } while (v > 0);
  return out;
}

/** A decoded segment: generated column, then (optionally) source, line, column, name. */
export type Segment = number[];

export function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let line: Segment[] = [];
  const state = [0, 0, 0, 0, 0];
  let seg: number[] = [];
  let value = 0;
  let shift = 0;
  const flush = () => {
    if (seg.length > 0) {
      for (let k = 0; k < seg.length; k++) {
        state[k] = (state[k] as number) + (seg[k] as number);
        seg[k] = state[k] as number;
      }
      line.push(seg);
      seg = [];
    }
  };
  for (let i = 0; i < mappings.length; i++) {
    const c = mappings.charCodeAt(i);
    if (c === 59 /* ; */) {
      flush();
      lines.push(line);
      line = [];
      state[0] = 0;
    } else if (c === 44 /* , */) flush();
    else {
      const d = B64_VALUE[c] ?? -1;
      if (d < 0) continue;
      value += (d & 31) << shift;
      if (d & 32) shift += 5;
      else {
        seg.push(value & 1 ? -(value >>> 1) : value >>> 1);
        value = 0;
        shift = 0;
      }
    }
  }
  flush();
  lines.push(line);
  return lines;
}

export function encodeMappings(lines: Segment[][]): string {
  const state = [0, 0, 0, 0, 0];
  const out: string[] = [];
  for (const line of lines) {
    state[0] = 0;
    const segs: string[] = [];
    for (const seg of line) {
      let s = '';
      for (let k = 0; k < seg.length; k++) {
        s += encodeVlq((seg[k] as number) - (state[k] as number));
        state[k] = seg[k] as number;
      }
      segs.push(s);
    }
    out.push(segs.join(','));
  }
  return out.join(';');
}

/**
 * For each line, the edits on it as (original column, generated column after the edit) pairs: how far the
 * edits before a column push it right. Edits never span lines.
 */
interface LineShift {
  line: number;
  col: number; // original column of the edit start
  endCol: number; // original column of the edit end
  genStart: number; // generated column where the edit's text starts
  genEnd: number; // generated column just after it
}

function lineShifts(edits: Edit[], lineStarts: number[]): LineShift[] {
  const out: LineShift[] = [];
  let line = -1;
  let delta = 0;
  for (const e of edits) {
    const l = lineIndex(lineStarts, e.start);
    if (l !== line) {
      line = l;
      delta = 0;
    }
    const base = lineStarts[l] as number;
    const col = e.start - base;
    const genStart = col + delta;
    delta += e.text.length - (e.end - e.start);
    out.push({ line: l, col, endCol: e.end - base, genStart, genEnd: genStart + e.text.length });
  }
  return out;
}

const B64_CODES = Uint8Array.from(B64, (c) => c.charCodeAt(0));

/**
 * Writes mappings segment by segment (source index always 0), delta-encoding as it goes, into one growing byte
 * buffer: a 9 MB input has millions of segments, and a string per segment kept the GC busier than the encoding.
 */
class MappingWriter {
  private buf = new Uint8Array(1 << 16);
  private len = 0;
  private first = true;
  private genCol = 0;
  private origLine = 0;
  private origCol = 0;

  private vlq(value: number): void {
    let v = value < 0 ? (-value << 1) | 1 : value << 1;
    do {
      let digit = v & 31;
      v >>>= 5;
      if (v > 0) digit |= 32;
      this.buf[this.len++] = B64_CODES[digit] as number;
    } while (v > 0);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  seg(genCol: number, origLine: number, origCol: number): void {
    if (!this.first && genCol === this.genCol) return; // two edits at one offset: the first segment stands
    this.reserve(32);
    if (!this.first) this.buf[this.len++] = 44; // ,
    this.vlq(genCol - this.genCol);
    this.buf[this.len++] = 65; // A: source 0
    this.vlq(origLine - this.origLine);
    this.vlq(origCol - this.origCol);
    this.first = false;
    this.genCol = genCol;
    this.origLine = origLine;
    this.origCol = origCol;
  }

  nextLine(): void {
    this.reserve(1);
    this.buf[this.len++] = 59; // ;
    this.first = true;
    this.genCol = 0;
  }

  finish(): string {
    return Buffer.from(this.buf.buffer, this.buf.byteOffset, this.len).toString('latin1');
  }
}

/**
 * What each ASCII character is to the map: a segment starts where a run of WORD characters starts (every
 * character past ASCII counts as one), and at every OTHER character; BLANK ones start nothing. One table load per
 * character instead of a chain of comparisons: this loop runs over every character of every module, cold.
 */
const BLANK = 0;
const WORD = 1;
const OTHER = 2;
const CHAR_CLASS = new Uint8Array(128).fill(OTHER);
for (const c of [32, 9, 10, 13]) CHAR_CLASS[c] = BLANK;
for (let c = 0; c < 128; c++) {
  if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 36)
    CHAR_CLASS[c] = WORD;
}

/**
 * Our own map. Lines map 1:1; within a line a segment starts at every token boundary (consumers such as Node's
 * --enable-source-maps do not interpolate between segments, so this is what makes stack columns exact), at
 * every inserted text (mapped to its insertion point) and just after it.
 */
export function buildMap(source: string, edits: Edit[], lineStarts: number[], file: string): SourceMapV3 {
  const w = new MappingWriter();
  let k = 0;
  for (let l = 0; l < lineStarts.length; l++) {
    if (l > 0) w.nextLine();
    const base = lineStarts[l] as number;
    const lineEnd = l + 1 < lineStarts.length ? (lineStarts[l + 1] as number) : source.length;
    let delta = 0;
    let prevWord = false;
    let force = true;
    let pos = base;
    for (;;) {
      const edit = edits[k];
      const stop = edit !== undefined && edit.start < lineEnd ? edit.start : lineEnd;
      for (; pos < stop; pos++) {
        const c = source.charCodeAt(pos);
        const k = c < 128 ? (CHAR_CLASS[c] as number) : WORD;
        if (force || (k === WORD ? !prevWord : k === OTHER)) {
          w.seg(pos - base + delta, l, pos - base);
          force = false;
        }
        prevWord = k === WORD;
      }
      if (edit === undefined || edit.start >= lineEnd) break;
      k++;
      w.seg(edit.start - base + delta, l, edit.start - base);
      delta += edit.text.length - (edit.end - edit.start);
      pos = edit.end;
      force = true;
    }
    if (force && pos === base) w.seg(0, l, 0);
  }
  return { version: 3, file, sources: [file], names: [], mappings: w.finish() };
}

/**
 * Composes our edits with the map the input already had (e.g. tsx's, to the .ts file): the input's segments
 * move right by the text inserted before them, and each insertion maps where the input mapped its position.
 */
export function composeMap(
  input: SourceMapV3,
  edits: Edit[],
  lineStarts: number[],
  file: string,
): SourceMapV3 {
  const shifts = lineShifts(edits, lineStarts);
  const inLines = decodeMappings(input.mappings);
  const lines: Segment[][] = [];
  let k = 0;
  const count = Math.max(inLines.length, lineStarts.length);
  for (let l = 0; l < count; l++) {
    const src = inLines[l] ?? [];
    const mine: LineShift[] = [];
    while (k < shifts.length && (shifts[k] as LineShift).line === l) mine.push(shifts[k++] as LineShift);
    if (mine.length === 0) {
      lines.push(src);
      continue;
    }
    const out: Segment[] = [];
    let j = 0;
    let delta = 0;
    let covering: Segment | undefined;
    for (const s of mine) {
      // Input segments before this edit keep their place plus the shift so far.
      while (j < src.length && ((src[j] as Segment)[0] as number) < s.col) {
        covering = src[j++] as Segment;
        out.push([(covering[0] as number) + delta, ...covering.slice(1)]);
      }
      // Segments inside a replaced range vanish.
      while (j < src.length && ((src[j] as Segment)[0] as number) < s.endCol) covering = src[j++] as Segment;
      const next = src[j];
      const cov = next !== undefined && next[0] === s.endCol && s.endCol === s.col ? next : covering;
      if (cov !== undefined && cov.length > 1) {
        out.push([s.genStart, ...cov.slice(1, 4)], [s.genEnd, ...cov.slice(1, 4)]);
      }
      delta = s.genEnd - s.endCol;
    }
    while (j < src.length) {
      const seg = src[j++] as Segment;
      out.push([(seg[0] as number) + delta, ...seg.slice(1)]);
    }
    // Keep generated columns strictly increasing (a later segment wins at the same column).
    const dedup: Segment[] = [];
    for (const seg of out) {
      if (dedup.length > 0 && (dedup[dedup.length - 1] as Segment)[0] === seg[0]) dedup.pop();
      dedup.push(seg);
    }
    lines.push(dedup);
  }
  const map: SourceMapV3 = {
    version: 3,
    file,
    sources: input.sources,
    names: input.names ?? [],
    mappings: encodeMappings(lines),
  };
  if (input.sourceRoot !== undefined) map.sourceRoot = input.sourceRoot;
  if (input.sourcesContent !== undefined) map.sourcesContent = input.sourcesContent;
  return map;
}
