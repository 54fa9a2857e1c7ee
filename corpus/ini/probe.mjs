// ini probe: parse the input as an ini file; exploited when Object.prototype got a key from it.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ini = require('ini');

export function probe(input) {
  const result = ini.parse(input);
  const exploited = {}.polluted !== undefined;
  delete Object.prototype.polluted;
  return { result, exploited };
}
