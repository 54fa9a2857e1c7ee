// json5 probe: parse the input; exploited when the parsed object inherits 'isAdmin' through a '__proto__' key.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const JSON5 = require('json5');

export function probe(input) {
  const result = JSON5.parse(input);
  return { result, exploited: result.isAdmin === true };
}
