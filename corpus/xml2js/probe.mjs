// xml2js probe: parse the XML input; exploited when a '__proto__' element replaced the prototype of the result
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const xml2js = require('xml2js');

export async function probe(input) {
  const parsed = await xml2js.parseStringPromise(input, { explicitArray: false });
  const result = JSON.parse(JSON.stringify(parsed));
  return { result, exploited: Array.isArray(Object.getPrototypeOf(parsed.root)) };
}
