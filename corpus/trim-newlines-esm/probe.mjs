// trim-newlines probe (ESM): trim the input's trailing newlines; 'attack' sends newlines followed by a letter instead.
import trimNewlines from 'trim-newlines';

export function probe(input) {
  const text = input === 'attack' ? 'a' + '\n'.repeat(20000) + 'a' : input;
  const t0 = performance.now();
  const result = trimNewlines.end(text);
  return { result: input === 'attack' ? result.length : result, exploited: performance.now() - t0 > 100 };
}
