// dot-prop probe: set 'yes' at the dotted path; exploited when Object.prototype got the value.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dotProp = require('dot-prop');

export function probe(input) {
  const result = dotProp.set({}, input, 'yes');
  const exploited = {}.polluted !== undefined;
  delete Object.prototype.polluted;
  return { result, exploited };
}
