// Scenarios of the browser part of the grouping corpus. The page is loaded as two builds
// (?build=HASH: the same scripts under content-hashed names) from two origins; every event is kept
// by beforeSend in window.__events with its expected group in the tag "expect".
import * as Sentry from "@sentry/browser";

const build = new URLSearchParams(location.search).get("build");
const cart = await import(`./static/js/cart.${build}.js`);
window.__events = [];

Sentry.init({
  dsn: "http://5ec0de0f1c7e5ec0de0f1c7e5ec0de0f@127.0.0.1:9/1",
  sendClientReports: false,
  integrations: (defaults) =>
    defaults.filter((i) => !["Dedupe", "BrowserSession"].includes(i.name)),
  beforeSend(event) {
    window.__events.push(JSON.parse(JSON.stringify(event)));
    return null;
  },
});

function capture(group, action) {
  Sentry.withScope((scope) => {
    scope.setTag("expect", group);
    try {
      action();
    } catch (error) {
      Sentry.captureException(error);
    }
  });
}

for (const n of [1, 2]) capture("jsb-cart-undefined", () => cart.renderCart(undefined, n));
capture("jsb-checkout-reference", () => cart.submitOrder(7));
for (const n of [3, 4]) capture("jsb-totals-anonymous", () => cart.computeTotals([n, 0]));
capture("jsb-aggregate-same", () => cart.validateAll([null, null]));
for (const n of [3, 12]) {
  Sentry.withScope((scope) => {
    scope.setTag("expect", "jsb-message-cart-size");
    Sentry.captureMessage(`Cart has ${n} items over the limit`);
  });
}

// An uncaught error and an unhandled rejection, reported by the global handlers.
Sentry.getCurrentScope().setTag("expect", "jsb-unhandled-timer");
setTimeout(() => cart.renderCart(null, 9), 0);
await new Promise((resolve) => setTimeout(resolve, 200));
Sentry.getCurrentScope().setTag("expect", "jsb-unhandled-rejection");
cart.payOrder(build.length);
await new Promise((resolve) => setTimeout(resolve, 200));
window.__done = true;
