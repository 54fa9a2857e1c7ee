// qs probe: parse a query string as Express does; exploited when '__proto__' reached the parsed object's prototype.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const qs = require('qs');

export function probe(input) {
  const result = qs.parse(input, { allowPrototypes: true });
  return { result, exploited: result.a != null && result.a.admin !== undefined };
}
