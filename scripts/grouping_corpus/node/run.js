// Scenarios of the JavaScript part of the grouping corpus (@sentry/node), run by
// scripts/record_grouping_corpus.py from a scratch directory where the SDK was installed with npm:
//   node run.js all | unhandled GROUP N
// Each event carries its expected group in the tag "expect" (the recorder moves it out); beforeSend
// appends the event as the SDK would send it to $GROUPING_OUT and drops it.
"use strict";

const fs = require("fs");
const Sentry = require("@sentry/node");
const pages = require("./lib/pages");
const jobs = require("./lib/jobs");

Sentry.init({
  dsn: "http://5ec0de0f1c7e5ec0de0f1c7e5ec0de0f@127.0.0.1:9/1",
  // Dedupe drops an event identical to the one before: the corpus wants every repeat.
  integrations: (defaults) => defaults.filter((integration) => integration.name !== "Dedupe"),
  beforeSend(event) {
    fs.appendFileSync(process.env.GROUPING_OUT, JSON.stringify(event) + "\n");
    return null;
  },
});

function capture(group, action, options = {}) {
  Sentry.withScope((scope) => {
    scope.setTag("expect", group);
    for (const [name, value] of Object.entries(options.tags || {})) scope.setTag(name, value);
    if (options.fingerprint) scope.setFingerprint(options.fingerprint);
    try {
      action();
    } catch (error) {
      Sentry.captureException(error);
    }
  });
}

function message(group, text, level = "warning") {
  Sentry.withScope((scope) => {
    scope.setTag("expect", group);
    Sentry.captureMessage(text, level);
  });
}

async function captureAsync(group, action) {
  try {
    await action();
  } catch (error) {
    Sentry.withScope((scope) => {
      scope.setTag("expect", group);
      Sentry.captureException(error);
    });
  }
}

async function main() {
  const what = process.argv[2];
  if (what === "unhandled") {
    Sentry.setTag("expect", process.argv[3]);
    setTimeout(() => pages.renderPage(Number(process.argv[4])), 0);
    return;
  }
  for (const number of [3, 9, 250]) capture("js-render-page", () => pages.renderPage(number));
  for (const name of ["a.pdf", "b 7.pdf"]) capture("js-layout-missing", () => pages.layout(name));
  for (const text of ["{bad", "[1,", ""]) capture("js-parse-settings", () => pages.parseSettings(text));
  capture("js-parse-manifest", () => pages.parseManifest("{bad"));
  for (const id of [17, 4242]) capture("js-null-property", () => pages.ownerName({ id }));
  for (const n of [1, 2]) capture("js-anonymous-callback", () => pages.eachPage([n, 0]));
  for (const n of [10, 20]) capture("js-class-method", () => new pages.Renderer(n).draw(null));
  for (const depth of [1, 2]) capture("js-recursion", () => pages.nest(depth));
  for (const host of ["10.0.0.7", "db.internal"]) capture("js-cause-chain", () => jobs.fetchWithCause(host));
  for (const host of ["10.0.0.7", "db.internal"]) capture("js-no-cause", () => jobs.fetchPlain(host));
  for (const names of [["a", "b"], ["c", "d", "e"]]) capture("js-aggregate-same", () => jobs.validateAll(names));
  for (const names of [["a", 1], [2, "b", "c"]]) capture("js-aggregate-mixed", () => jobs.validateMixed(names));
  for (const n of [1, 2]) await captureAsync("js-async-job", () => jobs.runJob(n));
  capture("js-custom-queue", () => jobs.fetchPlain("x"), { fingerprint: ["queue-down"] });
  capture("js-custom-queue", () => pages.renderPage(5), { fingerprint: ["queue-down"] });
  for (const [region, n] of [["eu", 3], ["eu", 4], ["us", 3]]) {
    capture(`js-custom-default-region-${region}`, () => pages.renderPage(n),
      { fingerprint: ["{{ default }}", "{{ tags.region }}"], tags: { region } });
  }
  for (const n of [5000, 12, 731]) message("js-message-queue", `Render queue is ${n} jobs behind`);
  message("js-message-workers", "Render queue is 5 workers short");
  for (const id of ["7d3f9a2c-1b4e-4c8a-9f00-123456789abc", "00000000-aaaa-4bbb-8ccc-dddddddddddd"]) {
    message("js-message-upload", `upload ${id} failed with status 503 after 2048 ms`, "error");
  }
  await Sentry.close(5000);
}

main();
