// cookie probe: serialize a session cookie for the path the request names; exploited when an attribute was injected.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const cookie = require('cookie');

export function probe(input) {
  const result = cookie.serialize('sid', 'abc123', { path: input, httpOnly: true });
  return { result, exploited: /Domain=evil/i.test(result) };
}
