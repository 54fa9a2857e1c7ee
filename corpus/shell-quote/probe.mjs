// shell-quote probe: quote the input as one shell word; exploited when a backtick is left unescaped.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { quote } = require('shell-quote');

export function probe(input) {
  const result = quote(['ls', input]);
  return { result, exploited: /(^|[^\\])`/.test(result) };
}
