// dset probe (ESM): merge the JSON input into a fresh object; exploited when Object.prototype got a key from it.
import { merge } from 'dset/merge';

export function probe(input) {
  const result = merge({ a: { x: 1 } }, JSON.parse(input));
  const exploited = {}.polluted !== undefined;
  delete Object.prototype.polluted;
  return { result, exploited };
}
