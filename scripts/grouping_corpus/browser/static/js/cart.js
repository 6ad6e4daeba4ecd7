// Cart page code: served as cart.<build hash>.js, the way bundlers name their output.

export function renderCart(cart, attempt) {
  return `${cart.id}-${attempt}`;
}

export function submitOrder(number) {
  return orderTotal * number; // eslint-disable-line no-undef
}

export function computeTotals(sizes) {
  const totals = [];
  sizes.forEach((size) => {
    if (size === 0) throw new RangeError(`size ${size} is out of range`);
    totals.push(size);
  });
  return totals;
}

function check(value) {
  return value.length;
}

export function validateAll(values) {
  const errors = [];
  for (const value of values) {
    try {
      check(value);
    } catch (error) {
      errors.push(error);
    }
  }
  throw new AggregateError(errors, `${errors.length} values are invalid`);
}

export async function payOrder(number) {
  await new Promise((resolve) => setTimeout(resolve, 1));
  throw new Error(`payment ${number} declined`);
}
