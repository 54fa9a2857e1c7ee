// http-cache-semantics probe: a response with the input as Cache-Control; 'attack' is the ReDoS header.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const CachePolicy = require('http-cache-semantics');

export function probe(input) {
  const header = input === 'attack' ? 'a' + ' '.repeat(15000) + 'b' : input;
  const t0 = performance.now();
  const policy = new CachePolicy(
    { method: 'GET', headers: {} },
    { status: 200, headers: { 'cache-control': header } },
  );
  const result = { storable: policy.storable(), maxAge: policy.maxAge() };
  return { result, exploited: performance.now() - t0 > 100 };
}
