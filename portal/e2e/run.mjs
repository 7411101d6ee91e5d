// End-to-end test of the portal in a real browser (headless Debian chromium
// through playwright-core; no browser is downloaded).
//
// Starts `nubes serve` on free ports with a temporary SQLite database,
// creates a user with `nubes user create`, signs in through the browser,
// walks Organizations / Groups / Devices, checks session expiry and sign-out,
// and saves screenshots to docs/screenshots/. Exits non-zero on the first
// failed step. Needs the built portal (`npm run build`).
//
//   node e2e/run.mjs            NUBES_BIN, CHROMIUM override the paths

import { spawn, spawnSync } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const nubesBin = process.env.NUBES_BIN ?? path.join(root, ".venv/bin/nubes");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshots = path.join(root, "docs/screenshots");
const email = "e2e@example.com";
const password = "a long e2e secret";
const organization = "e2e-org";

function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.on("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

async function environment(tmp) {
  return {
    ...process.env,
    NUBES_BIND: "127.0.0.1",
    NUBES_HTTP_PORT: String(await freeTcpPort()),
    NUBES_FLAP_RAW_PORT: String(await freeUdpPort()),
    NUBES_FLAP_BASE64_PORT: String(await freeUdpPort()),
    NUBES_DTLS_PORT: String(await freeUdpPort()),
    NUBES_DATABASE_URL: `sqlite+aiosqlite:///${tmp}/nubes.db`,
    NUBES_LOG_LEVEL: "WARNING",
  };
}

async function waitForHealth(base, server, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`nubes serve exited with ${server.exitCode}`);
    try {
      if ((await fetch(`${base}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`nubes serve did not answer ${base}/health within ${seconds} s`);
}

function createUser(env) {
  const args = ["user", "create", "--email", email, "--password", password, "--org", organization];
  const result = spawnSync(nubesBin, [...args, "--role", "admin"], { env, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`nubes user create failed: ${result.stderr}`);
}

let step = "start";
function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function scenario(page, base) {
  step = "a signed-out visitor is sent to sign in";
  await page.goto(`${base}/`);
  await page.waitForURL(/\/sign-in/);
  await page.locator("input[name=email]").waitFor();
  await page.screenshot({ path: path.join(screenshots, "sign-in.png") });

  step = "a wrong password is refused";
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "not the password");
  await page.click("button[type=submit]");
  await page.getByText("Wrong email or password.").waitFor();

  step = "sign in and see the organizations";
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/organizations$/);
  await page.getByRole("link", { name: organization }).waitFor();
  await page.getByText(email).waitFor();
  await page.screenshot({ path: path.join(screenshots, "organizations.png") });

  step = "the organization's groups";
  await page.getByRole("link", { name: organization }).click();
  await page.waitForURL(/\/groups$/);
  await page.getByRole("link", { name: "default" }).waitFor();
  const crumbs = await page.locator("nav.crumbs").innerText();
  check(crumbs.includes("Organizations") && crumbs.includes(organization), `breadcrumb: ${crumbs}`);
  await page.screenshot({ path: path.join(screenshots, "groups.png") });

  step = "the group's devices: none yet";
  await page.getByRole("link", { name: "default" }).click();
  await page.waitForURL(/\/devices$/);
  await page.getByText("No devices in this group yet.").waitFor();

  step = "a reload of a client route keeps the page (SPA fallback)";
  await page.reload();
  await page.getByText("No devices in this group yet.").waitFor();

  step = "an expired session leads back to sign in";
  await page.evaluate(() => sessionStorage.setItem("nubes.access_token", "expired"));
  await page.goto(`${base}/organizations`);
  await page.getByText("Your session expired. Sign in again.").waitFor();

  step = "sign in again returns to the page, then sign out";
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/organizations$/);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/sign-in/);
  const token = await page.evaluate(() => sessionStorage.getItem("nubes.access_token"));
  check(token === null, "the token is forgotten on sign-out");

  step = "the phone layout";
  await page.setViewportSize({ width: 390, height: 760 });
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/organizations$/);
  await page.getByRole("link", { name: organization }).click();
  await page.getByRole("link", { name: "default" }).waitFor();
  await page.screenshot({ path: path.join(screenshots, "groups-phone.png") });
}

async function main() {
  check(
    fs.existsSync(path.join(root, "src/nubes/portal_dist/index.html")),
    "the portal is not built: run `npm run build` in portal/",
  );
  fs.mkdirSync(screenshots, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nubes-portal-e2e-"));
  const env = await environment(tmp);
  const base = `http://127.0.0.1:${env.NUBES_HTTP_PORT}`;
  const log = fs.openSync(path.join(tmp, "serve.log"), "w");
  const server = spawn(nubesBin, ["serve"], { env, cwd: tmp, stdio: ["ignore", log, log] });
  let browser;
  try {
    await waitForHealth(base, server);
    createUser(env);
    browser = await chromium.launch({
      executablePath: browserPath,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(10_000);
    await scenario(page, base);
    console.log("portal e2e: all steps passed; screenshots in docs/screenshots/");
  } catch (error) {
    console.error(`portal e2e failed at step "${step}": ${error.message}`);
    console.error(`nubes serve log: ${path.join(tmp, "serve.log")}`);
    process.exitCode = 1;
  } finally {
    await browser?.close();
    server.kill("SIGTERM");
    await new Promise((resolve) => (server.exitCode !== null ? resolve() : server.once("exit", resolve)));
    if (process.exitCode !== 1) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
