// flat probe: unflatten the JSON input; exploited when Object.prototype got a key from it.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { unflatten } = require('flat');

export function probe(input) {
  const result = unflatten(JSON.parse(input));
  const exploited = {}.polluted !== undefined;
  delete Object.prototype.polluted;
  return { result, exploited };
}
