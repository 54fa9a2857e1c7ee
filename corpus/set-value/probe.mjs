// set-value probe: set 'yes' at the path given as JSON; exploited when Object.prototype got the value.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const set = require('set-value');

export function probe(input) {
  const result = set({}, JSON.parse(input), 'yes');
  const exploited = {}.polluted !== undefined;
  delete Object.prototype.polluted;
  return { result, exploited };
}
