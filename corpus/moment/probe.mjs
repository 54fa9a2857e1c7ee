// moment probe: format a fixed date in the locale the request names; exploited when that loaded evil.js.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const moment = require('moment');
const evil = require.resolve('./evil.js');

export function probe(input) {
  // A file loads once per process; forget it so every attempt is seen.
  delete require.cache[evil];
  globalThis.corpusEvilLoads = 0;
  const result = moment.utc(0).locale(input).format('LLLL');
  return { result, exploited: globalThis.corpusEvilLoads > 0 };
}
