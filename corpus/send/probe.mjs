// send probe: a static file server (send) on its own port; the probe fetches the input path from it.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const send = require('send');

const root = new URL('./public/', import.meta.url).pathname;
const files = http.createServer((req, res) =>
  send(req, new URL(req.url, 'http://x').pathname, { root }).pipe(res),
);
await new Promise((resolve) => files.listen(0, '127.0.0.1', resolve));

export function probe(input) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: files.address().port, path: input, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () =>
          resolve({
            result: { status: res.statusCode, location: res.headers.location ?? null, body },
            exploited: /<a href=/.test(body),
          }),
        );
      })
      .on('error', reject);
  });
}
