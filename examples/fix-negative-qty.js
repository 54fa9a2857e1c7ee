// @livepatch-fixes SHOP-101
// A hand-written live patch for the demo shop: refuse quantities outside 1..100 in lineTotal().
import { defineLivepatch } from 'livepatch';

export default defineLivepatch({
  name: 'fix-negative-qty',
  objects: [
    {
      module: 'demo-shop/pricing.js',
      funcs: [
        {
          name: 'lineTotal',
          // A factory receives the module's private bindings: PRICES is not exported, yet the fix reads it.
          factory: ({ bindings }) =>
            function lineTotal(item, qty) {
              const unit = bindings.PRICES[item];
              if (unit === undefined) throw new RangeError(`unknown item '${item}'`);
              if (!Number.isInteger(qty) || qty < 1 || qty > 100)
                throw new RangeError('quantity must be a whole number from 1 to 100');
              return unit * qty;
            },
        },
      ],
    },
  ],
});
