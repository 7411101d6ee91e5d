// End-to-end test of the portal in a real browser (headless Debian chromium
// through playwright-core; no browser is downloaded).
//
// Starts `nubes serve` on free ports with a temporary SQLite database and a
// user, then runs the scenarios below in order, each in scenarios/<name>.mjs.
// Scenarios save screenshots to docs/screenshots/. Exits non-zero on the
// first failed step. Needs the built portal (`npm run build`).
//
//   node e2e/run.mjs [name ...]     only these scenarios (default: all)
//   NUBES_BIN, CHROMIUM, NUBES_PORTAL_DIR override the paths

import { runScenarios } from "./harness.mjs";

const ALL = ["basics", "devices", "messages", "callbacks", "downlinks", "settings"];

const chosen = process.argv.slice(2);
for (const name of chosen) {
  if (!ALL.includes(name)) throw new Error(`no scenario ${name}; there are: ${ALL.join(", ")}`);
}
const names = chosen.length > 0 ? ALL.filter((name) => chosen.includes(name)) : ALL;
const scenarios = [];
for (const name of names) {
  const module = await import(`./scenarios/${name}.mjs`);
  scenarios.push([name, module.default]);
}
await runScenarios(scenarios);
