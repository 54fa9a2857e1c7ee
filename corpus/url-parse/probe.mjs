// url-parse probe: where an app would redirect for the input (its origin + the parsed pathname); exploited when that
// leaves the app's host.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const parse = require('url-parse');

export function probe(input) {
  const u = parse(input, {});
  const result = { protocol: u.protocol, hostname: u.hostname, pathname: u.pathname };
  const target = new URL('https://shop.example' + u.pathname);
  return { result, exploited: target.hostname !== 'shop.example' };
}
