// One scenario of the JavaScript SDK (@sentry/node), run by scripts/record_fixtures.py from a
// throwaway directory where the SDK was installed from npm: `node record_fixtures.js SCENARIO`.
// SENTRY_DSN points at the recorder. Each scenario is what a small Node worker would do.
"use strict";

const Sentry = require("@sentry/node");

const scenario = process.argv[2];

Sentry.init({
  dsn: process.env.SENTRY_DSN,
  serverName: "recorder",
  release: undefined,
  // captureMessage then carries a synthetic exception (a value, no type): shim must store a message.
  attachStacktrace: scenario === "message",
});
Sentry.setTag("component", "pdf-renderer");
Sentry.setTag("workspace_id", "ws-42");

function renderPage(number) {
  throw new TypeError(`page ${number} has no layout`);
}

async function main() {
  if (scenario === "exception") {
    try {
      renderPage(3);
    } catch (error) {
      Sentry.captureException(error);
    }
  } else if (scenario === "message") {
    Sentry.captureMessage("Queue is 5000 jobs behind", "warning");
  } else if (scenario === "fatal") {
    try {
      JSON.parse("{not json");
    } catch (error) {
      Sentry.captureException(error, { level: "fatal" });
    }
  } else if (scenario === "unhandled") {
    setTimeout(() => renderPage(9), 0); // the onUncaughtException integration reports it, exits 1
    return;
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  await Sentry.close(10000);
}

main();
