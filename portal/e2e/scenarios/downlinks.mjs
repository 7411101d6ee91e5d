// Downlinks: queue a shell command and a config line, cancel a third, let
// the simulated device poll, and see the shell answer appear without reload.

import { until } from "../harness.mjs";

export default async function downlinks(ctx) {
  const { page } = ctx;
  await ctx.signIn();
  const device = await ctx.ensureDevice();

  ctx.begin("open the device's Downlinks tab");
  // The device's overview by its address (the devices page links to it in
  // its own way), then the tab bar like a reader.
  const { org, group } = await ctx.organization();
  await page.goto(`${ctx.base}/organizations/${org.id}/groups/${group.id}/devices/${device.id}`);
  await page.getByRole("navigation", { name: "Device pages" }).getByRole("link", { name: "Downlinks" }).click();
  await page.waitForURL(/\/downlinks$/);
  await page.getByText("No downlinks for this device yet.").waitFor();

  ctx.begin("queue a shell command");
  const body = page.getByRole("textbox", { name: /Commands, one a line/ });
  await body.fill("app config show");
  await page.getByRole("button", { name: "Queue downlink" }).click();
  const shellRow = page.locator("tbody tr", { hasText: "app config show" });
  await shellRow.locator("[data-state]").or(shellRow).first().waitFor();
  await until("the shell downlink pending", async () => (await shellRow.getAttribute("data-state")) === "pending");

  ctx.begin("queue a config line, with the keyboard");
  await page.getByRole("radio", { name: "Config lines" }).check();
  const lines = page.getByRole("textbox", { name: /Config lines, one a line/ });
  await lines.fill("app config interval-report 600");
  await lines.press("Control+Enter");
  const configRow = page.locator("tbody tr", { hasText: "app config interval-report 600" });
  await until("the config downlink pending", async () => (await configRow.getAttribute("data-state")) === "pending");

  ctx.begin("a data downlink that is not JSON is refused before sending");
  await page.getByRole("radio", { name: "Data (encoder)" }).check();
  await page.getByRole("textbox", { name: /Data, a JSON object/ }).fill("{led_r: 1");
  await page.getByRole("button", { name: "Queue downlink" }).click();
  await page.getByText(/Not JSON/).waitFor();

  ctx.begin("queue a third and cancel it");
  await page.getByRole("radio", { name: "Shell commands" }).check();
  await page.getByRole("textbox", { name: /Commands, one a line/ }).fill("sys reboot");
  await page.getByRole("button", { name: "Queue downlink" }).click();
  const thirdRow = page.locator("tbody tr", { hasText: "sys reboot" });
  await thirdRow.getByRole("button", { name: /Cancel shell downlink/ }).click();
  await until("the third downlink cancelled", async () => (await thirdRow.getAttribute("data-state")) === "cancelled");
  ctx.check((await thirdRow.getByRole("button").count()) === 0, "a cancelled downlink offers no Cancel");
  ctx.check((await shellRow.getAttribute("data-state")) === "pending", "the shell downlink is still pending");

  ctx.begin("the device polls and answers the shell command");
  const sim = ctx.sim(["--serial", String(ctx.device.serial), "--claim-token", ctx.device.claimToken, "--messages", "1"]);
  const { code, output } = await sim.done;
  ctx.check(code === 0, `nubes sim exited with ${code}: ${output}`);
  await until("the shell downlink delivered", async () => (await shellRow.getAttribute("data-state")) === "delivered", { seconds: 30 });
  await shellRow.locator(".reply").waitFor({ timeout: 30_000 });
  const answer = await shellRow.locator(".reply").innerText();
  ctx.check(answer.includes("$ app config show"), `the answer names the command: ${answer}`);
  const configState = await configRow.getAttribute("data-state");
  ctx.check(configState !== "pending", `the config downlink left pending: ${configState}`);
  await ctx.screenshot("downlinks");

  ctx.begin("downlinks: readable on a phone, wide tables scroll inside their frame");
  await ctx.checkPhoneWidth("downlinks");
}
