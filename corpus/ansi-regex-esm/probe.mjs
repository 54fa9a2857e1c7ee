// ansi-regex probe (ESM): strip escape sequences from the input, as a log sanitiser would; 'attack' is the ReDoS input.
import ansiRegex from 'ansi-regex';

export function probe(input) {
  const text = input === 'attack' ? '\u001b[' + ';'.repeat(12000) : input;
  const t0 = performance.now();
  const result = text.replace(ansiRegex(), '');
  return { result: input === 'attack' ? result.length : result, exploited: performance.now() - t0 > 100 };
}
