// The shop's prices and quotes. It has a real bug: nothing checks the quantity.
const PRICES = { book: 12.5, mug: 8, shirt: 20 };

export function lineTotal(item, qty) {
  const unit = PRICES[item];
  if (unit === undefined) throw new RangeError(`unknown item '${item}'`);
  // BUG: a negative quantity gives a negative total, so the shop would pay the customer.
  return unit * qty;
}

export function quote(item, qty) {
  return { item, qty, total: lineTotal(item, qty).toFixed(2) };
}
