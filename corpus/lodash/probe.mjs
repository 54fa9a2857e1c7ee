// lodash probe: compile a template with the input as its 'variable' option; exploited when that ran code.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const _ = require('lodash');

export function probe(input) {
  globalThis.corpusPwned = 0;
  const result = _.template('hello <%= data.name %>', { variable: input })({ name: 'bob' });
  return { result, exploited: globalThis.corpusPwned === 1 };
}
