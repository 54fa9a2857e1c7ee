// word-wrap probe: wrap the input at 30 columns with trimming; 'attack' is the ReDoS input.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const wrap = require('word-wrap');

export function probe(input) {
  const text = input === 'attack' ? 'a' + '\t'.repeat(15000) + '\u200bx' : input;
  const t0 = performance.now();
  const result = wrap(text, { width: 30, indent: '', trim: true });
  return { result: input === 'attack' ? result.length : result, exploited: performance.now() - t0 > 100 };
}
