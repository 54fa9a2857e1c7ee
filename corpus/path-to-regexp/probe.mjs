// path-to-regexp probe: match the input path against the route '/:a-:b'; 'attack' is the ReDoS path.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pathToRegexp = require('path-to-regexp');

export function probe(input) {
  // Compiled per request: a route compiled before the patch would keep the old regular expression (see case.json).
  const route = pathToRegexp('/:a-:b');
  const path = input === 'attack' ? '/' + '-'.repeat(24000) + '/x' : input;
  const t0 = performance.now();
  const m = route.exec(path);
  return { result: m && [...m], exploited: performance.now() - t0 > 100 };
}
