// minimist probe: parse argv given as JSON; exploited when a parse reached Function.prototype or Object.prototype.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const minimist = require('minimist');

export function probe(input) {
  const result = minimist(JSON.parse(input));
  const exploited = function () {}.polluted !== undefined || {}.polluted !== undefined;
  delete Function.prototype.polluted;
  delete Object.prototype.polluted;
  return { result, exploited };
}
