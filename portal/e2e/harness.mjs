// The harness of the portal's browser test: a `nubes serve` on free ports with
// a temporary SQLite database, a user, a headless Debian chromium, and the
// context every scenario gets (see run.mjs).

import { spawn, spawnSync } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
const nubesBin = process.env.NUBES_BIN ?? path.join(root, ".venv/bin/nubes");
const browserPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const screenshots = path.join(root, "docs/screenshots");

export const user = { email: "e2e@example.com", password: "a long e2e secret", organization: "e2e-org" };

/** The device the scenarios share: added in the portal by "devices", or through the API when run alone. */
export const device = {
  name: "e2e-chester",
  serial: 2159000001,
  claimToken: "0123456789abcdef0123456789abcdef",
  psk: "00112233445566778899aabbccddeeff",
};

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
    // The callbacks scenario's receiver listens on loopback.
    NUBES_CALLBACK_ALLOW_PRIVATE: "true",
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

export class StepError extends Error {}

/**
 * Polls `read()` until `test` holds on its value (by default: the value is
 * truthy) and returns that value; fails with `what` and the last value after
 * `seconds`. For conditions the page cannot wait on by itself (an API's
 * answer, a receiver's requests, a count that must reach a number).
 */
export async function until(what, read, { test = Boolean, seconds = 20, every = 100 } = {}) {
  const deadline = Date.now() + seconds * 1000;
  let value;
  while (Date.now() < deadline) {
    value = await read();
    if (test(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, every));
  }
  throw new StepError(`timed out waiting for ${what} (last: ${JSON.stringify(value) ?? "nothing"})`);
}

/** Everything a scenario needs; one per run, shared by the scenarios in order. */
class Context {
  constructor(page, base, env, tmp) {
    this.page = page;
    this.base = base;
    this.env = env;
    this.tmp = tmp;
    this.user = user;
    this.device = device;
    this.screenshots = screenshots;
    this.step = "start";
    this.children = [];
    this.token = null;
  }

  /** Names the step that runs now; a failure reports it. */
  begin(step) {
    this.step = step;
  }

  check(condition, message) {
    if (!condition) throw new StepError(message);
  }

  async screenshot(name) {
    await this.page.screenshot({ path: path.join(screenshots, `${name}.png`) });
  }

  /** Runs `nubes <args>` to its end; throws on a non-zero exit. */
  nubes(args) {
    const result = spawnSync(nubesBin, args, { env: this.env, encoding: "utf8", cwd: this.tmp });
    if (result.status !== 0) throw new Error(`nubes ${args.join(" ")} failed: ${result.stderr}`);
    return result.stdout;
  }

  /**
   * Starts `nubes sim <args>` against this server (the base64 port unless
   * args say otherwise) in the background; `await handle.done` gives its
   * exit code and output. Every sim still running is killed at the end.
   */
  sim(args) {
    const child = spawn(nubesBin, ["sim", ...args], { env: this.env, cwd: this.tmp });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const done = new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
    this.children.push(child);
    return { child, done, output: () => output };
  }

  /** Calls the REST API as the e2e user (signed in once, outside the browser). */
  async api(method, apiPath, body) {
    if (this.token === null) {
      const login = await fetch(`${this.base}/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: user.email, password: user.password }),
      });
      if (!login.ok) throw new Error(`API sign-in failed: ${login.status}`);
      this.token = (await login.json()).access_token;
    }
    const answer = await fetch(`${this.base}${apiPath}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await answer.text();
    if (!answer.ok) throw new Error(`${method} ${apiPath}: ${answer.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** The e2e organization and its default group, as the API shows them. */
  async organization() {
    const orgs = await this.api("GET", "/v1/organizations");
    const org = orgs.find((o) => o.name === user.organization);
    const groups = await this.api("GET", `/v1/groups?organization_id=${org.id}`);
    return { org, group: groups.find((g) => g.name === "default") };
  }

  /** The shared device, added through the API when no scenario added it yet. */
  async ensureDevice() {
    const { org, group } = await this.organization();
    const found = await this.api("GET", `/v1/devices?organization_id=${org.id}&q=${device.serial}`);
    const existing = found.find((d) => d.serial === device.serial);
    if (existing) return existing;
    return this.api("POST", "/v1/devices", {
      organization_id: org.id,
      group_id: group.id,
      name: device.name,
      serial: device.serial,
      claim_token: device.claimToken,
      psk: device.psk,
    });
  }

  /**
   * Checks the current page at a phone's width (390 px): it must not be wider
   * than the screen (wide tables scroll inside their frame). Saves the
   * screenshot `shot` when given, then returns to laptop size.
   */
  async checkPhoneWidth(what, shot) {
    const page = this.page;
    await page.setViewportSize({ width: 390, height: 844 });
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    this.check(width <= 390, `${what}: the page is ${width} px wide at 390 px`);
    if (shot) await this.screenshot(shot);
    await page.setViewportSize({ width: 1280, height: 800 });
  }

  /** Makes sure the browser is signed in, at laptop size, on the organizations page. */
  async signIn() {
    const page = this.page;
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${this.base}/organizations`);
    // Either the organizations (signed in) or the sign-in form, once the router has decided.
    const form = page.locator("input[name=email]");
    const orgLink = page.getByRole("link", { name: user.organization, exact: true });
    await form.or(orgLink).first().waitFor();
    if (await form.isVisible()) {
      await page.fill("input[name=email]", user.email);
      await page.fill("input[name=password]", user.password);
      await page.click("button[type=submit]");
      await page.waitForURL(/\/organizations$/);
    }
    await orgLink.waitFor();
  }

  killChildren() {
    for (const child of this.children) if (child.exitCode === null) child.kill("SIGTERM");
  }
}

/** Starts the server and the browser, runs the scenarios in order, stops everything. */
export async function runScenarios(scenarios) {
  if (!fs.existsSync(path.join(root, "src/nubes/portal_dist/index.html")) && !process.env.NUBES_PORTAL_DIR) {
    throw new Error("the portal is not built: run `npm run build` in portal/");
  }
  fs.mkdirSync(screenshots, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "nubes-portal-e2e-"));
  const env = await environment(tmp);
  const base = `http://127.0.0.1:${env.NUBES_HTTP_PORT}`;
  const log = fs.openSync(path.join(tmp, "serve.log"), "w");
  const server = spawn(nubesBin, ["serve"], { env, cwd: tmp, stdio: ["ignore", log, log] });
  let browser;
  let ctx;
  let failed = false;
  try {
    await waitForHealth(base, server);
    const args = ["user", "create", "--email", user.email, "--password", user.password];
    spawnSync(nubesBin, [...args, "--org", user.organization, "--role", "admin"], { env, encoding: "utf8" });
    browser = await chromium.launch({
      executablePath: browserPath,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(10_000);
    ctx = new Context(page, base, env, tmp);
    for (const [name, scenario] of scenarios) {
      ctx.begin(`${name}: start`);
      const started = Date.now();
      await scenario(ctx);
      console.log(`portal e2e: ${name} passed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    }
    console.log("portal e2e: all scenarios passed; screenshots in docs/screenshots/");
  } catch (error) {
    failed = true;
    console.error(`portal e2e failed at step "${ctx?.step ?? "start"}": ${error.message}`);
    console.error(`nubes serve log: ${path.join(tmp, "serve.log")}`);
    if (ctx) {
      const shot = path.join(tmp, "failure.png");
      await ctx.page.screenshot({ path: shot }).catch(() => {});
      console.error(`the page at the failure: ${shot}`);
    }
    process.exitCode = 1;
  } finally {
    ctx?.killChildren();
    await browser?.close();
    server.kill("SIGTERM");
    await new Promise((resolve) => (server.exitCode !== null ? resolve() : server.once("exit", resolve)));
    if (!failed) fs.rmSync(tmp, { recursive: true, force: true });
  }
}
