// y18n probe: a fresh translator per request, set to the input locale and updated; exploited when Object.prototype changed.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const y18n = require('y18n');

export function probe(input) {
  const i18n = y18n({ updateFiles: false });
  i18n.setLocale(input);
  i18n.updateLocale({ polluted: 'yes' });
  const result = i18n.__('polluted');
  const exploited = {}.polluted !== undefined;
  delete Object.prototype.polluted;
  return { result, exploited };
}
