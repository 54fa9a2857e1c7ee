// The benchmark apps' shared business logic: a small product catalog, so each request runs a few app functions.
// These functions are what the loader instruments (the apps are the "app" for livepatch) and `renderItem` is the hot
// function the "patched" variant replaces.

const items = new Map();
for (let i = 0; i < 256; i++) {
  items.set(i, { id: i, name: `item ${i}`, price: (i * 37) % 1000, tags: ['t' + (i % 7), 't' + (i % 11)] });
}

export function parseRoute(url) {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const parts = path.split('/').filter(Boolean);
  return { parts, query: q < 0 ? '' : url.slice(q + 1) };
}

export function authenticate(headers) {
  const token = headers['x-token'];
  return token === undefined ? { user: 'anonymous' } : { user: token.slice(0, 16) };
}

export function loadItem(id) {
  return items.get(id % 256);
}

export function renderItem(item, who) {
  const price = (item.price / 100).toFixed(2);
  return JSON.stringify({ id: item.id, name: item.name, price, tags: item.tags, for: who.user });
}
