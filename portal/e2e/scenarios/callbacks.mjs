// The callbacks pages: a receiver on loopback, a callback made in the portal
// with a JSONata payload (a syntax error seen at its position first), the
// live preview, "Send test", a real delivery from the simulator, and the
// delivery log with its attempt.

import http from "node:http";
import { until } from "../harness.mjs";

/** A tiny HTTP endpoint that records what it gets and answers 200 with JSON. */
function startReceiver() {
  const received = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      received.push({ method: request.method, url: request.url, headers: request.headers, body });
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ received: true, count: received.length }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ server, received, url: `http://127.0.0.1:${server.address().port}/hook` }));
  });
}

async function runSim(ctx, messages) {
  const sim = ctx.sim(["--serial", String(ctx.device.serial), "--claim-token", ctx.device.claimToken, "--messages", String(messages)]);
  const { code, output } = await sim.done;
  ctx.check(code === 0, `nubes sim exited with ${code}: ${output}`);
}

const BROKEN = '{"serial": device.serial_number, "seq": data.message.sequence +}';
// Typed line by line: the editor does not indent by itself.
const PAYLOAD = '{\n  "serial": device.serial_number,\n  "seq": data.message.sequence,\n  "t": data.thermometer.temperature\n}';

export default async function callbacks(ctx) {
  const { page, base } = ctx;
  const receiver = await startReceiver();
  try {
    ctx.begin("the device sends two messages");
    await ctx.ensureDevice();
    await runSim(ctx, 2);
    const { org, group } = await ctx.organization();
    const messages = await ctx.api("GET", `/v1/messages?group_id=${group.id}&type=data&sort_order=desc&limit=1`);
    ctx.check(messages.length > 0 && messages[0].data?.message, "the sim's data messages are stored and decoded");

    ctx.begin("the group's callbacks: none yet");
    await ctx.signIn();
    await page.goto(`${base}/organizations/${org.id}/groups/${group.id}/callbacks`);
    const tab = page.getByRole("navigation", { name: "Group pages" }).getByRole("link", { name: "Callbacks" });
    ctx.check((await tab.getAttribute("aria-current")) === "page", "the Callbacks tab is the current one");
    await page.getByText("No callbacks in this group yet.").waitFor();

    ctx.begin("a new callback to the receiver");
    await page.getByRole("link", { name: "New callback" }).click();
    await page.getByRole("heading", { name: "New callback" }).waitFor();
    await page.getByLabel("Name", { exact: true }).fill("e2e receiver");
    await page.getByRole("textbox", { name: "URL" }).fill(receiver.url);
    await page.getByRole("button", { name: "Add header" }).click();
    await page.getByLabel("header 1 name").fill("X-Farm");
    await page.keyboard.press("Tab");
    await page.keyboard.type("{{device.name}}");

    ctx.begin("a syntax error is marked at its position");
    const editor = page.getByLabel("JSONata expression");
    await editor.click();
    await editor.pressSequentially(BROKEN, { delay: 0 });
    const problem = page.locator("#callback-payload-problem");
    await problem.getByText(/column \d+/).waitFor();
    const marked = await page.locator(".tok-problem").innerText();
    ctx.check(marked === "}", `the mark is on the closing brace, not on ${JSON.stringify(marked)}`);
    const column = BROKEN.lastIndexOf("}") + 1;
    ctx.check((await problem.innerText()).includes(`column ${column}`), `the message names column ${column}`);

    ctx.begin("fix it and see the transformed payload");
    await editor.press("Control+a");
    await editor.press("Delete");
    await editor.pressSequentially(PAYLOAD, { delay: 0 });
    await page.locator(".tok-problem").waitFor({ state: "detached" });
    const transformed = page.getByTestId("preview-transformed");
    const expected = messages[0];
    const preview = await until("the preview of the latest message", async () => {
      try {
        const shown = JSON.parse(await transformed.innerText());
        return shown.seq === expected.data.message.sequence ? shown : null;
      } catch {
        return null;
      }
    });
    ctx.check(preview.serial === ctx.device.serial, `the preview's serial: ${JSON.stringify(preview)}`);
    ctx.check(preview.t === expected.data.thermometer.temperature, `the preview's temperature: ${JSON.stringify(preview)}`);
    await page.getByText("Content-Type: application/json").waitFor();
    await page.locator("section.panel", { has: page.getByRole("heading", { name: "Payload" }) }).evaluate((el) => el.scrollIntoView());
    await ctx.screenshot("callback-editor");
    await ctx.checkPhoneWidth("the callback editor");

    ctx.begin("save");
    await page.getByRole("button", { name: "Create callback" }).click();
    await page.waitForURL(/\/callbacks\/[0-9a-f-]{36}$/);
    await page.getByRole("heading", { name: "e2e receiver" }).waitFor();
    await page.getByText("Health").first().waitFor();

    ctx.begin("send test shows the receiver's answer");
    await page.getByRole("button", { name: "Send test" }).click();
    await page.getByTestId("test-status").getByText("200").waitFor();
    const body = JSON.parse(await page.getByTestId("test-body").innerText());
    ctx.check(body.received === true, `the receiver's body: ${JSON.stringify(body)}`);
    const tested = receiver.received.at(-1);
    ctx.check(tested.headers["x-farm"] === ctx.device.name, `the templated header: ${tested.headers["x-farm"]}`);

    ctx.begin("a new message is delivered, transformed");
    const before = receiver.received.length;
    await runSim(ctx, 1);
    const delivered = await until("the delivery", () => receiver.received.slice(before).find((r) => r.headers["x-nubes-delivery"]), { seconds: 30 });
    const sent = JSON.parse(delivered.body);
    ctx.check(sent.serial === ctx.device.serial && typeof sent.seq === "number" && "t" in sent, `delivered: ${delivered.body}`);
    ctx.check(Object.keys(sent).sort().join() === "seq,serial,t", `only the transformed fields: ${delivered.body}`);

    ctx.begin("the delivery log shows it delivered with 200");
    const log = page.getByRole("region", { name: "Delivery log" });
    await log.scrollIntoViewIfNeeded();
    await until("a succeeded delivery in the log", async () => {
      await log.getByRole("button", { name: "Refresh" }).click();
      return (await log.getByTestId("delivery").filter({ hasText: "succeeded" }).count()) > 0;
    });
    const row = log.getByTestId("delivery").filter({ hasText: "succeeded" }).first();
    ctx.check((await row.innerText()).includes("200"), "the delivery's last status is 200");
    await row.getByRole("button", { name: "Attempts" }).click();
    const attempt = log.getByTestId("attempt").first();
    await attempt.getByText("success").waitFor();
    await attempt.getByText(`"seq":${sent.seq}`).waitFor();
    await attempt.getByText('"received":true').waitFor();
    await log.scrollIntoViewIfNeeded();
    await ctx.screenshot("callback-deliveries");

    ctx.begin("the list shows the callback and its health");
    await page.getByRole("link", { name: "← All callbacks" }).click();
    const listed = page.getByRole("row", { name: /e2e receiver/ });
    await listed.waitFor();
    const text = await listed.innerText();
    ctx.check(text.includes("healthy") && text.includes(receiver.url), `the list's row: ${text}`);
    await ctx.screenshot("callbacks");
  } finally {
    receiver.server.close();
  }
}
