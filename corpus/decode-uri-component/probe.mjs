// decode-uri-component probe: decode the (percent-encoded) input; an exception is the denial of service.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const decode = require('decode-uri-component');

export function probe(input) {
  try {
    return { result: decode(input), exploited: false };
  } catch (e) {
    return { result: { threw: e.constructor.name }, exploited: true };
  }
}
