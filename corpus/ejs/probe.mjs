// ejs probe: render a template with the input as 'outputFunctionName'; exploited when that ran code.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ejs = require('ejs');

export function probe(input) {
  globalThis.corpusPwned = 0;
  const result = ejs.render('<p><%= name %></p>', { name: 'bob' }, { outputFunctionName: input });
  return { result, exploited: globalThis.corpusPwned === 1 };
}
