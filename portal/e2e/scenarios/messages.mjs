// The messages page of a device, driven like a user: live rows from the
// simulator, pause and resume, a row's details, a filter that matches
// nothing, the NDJSON export, deleting one message.

import fs from "node:fs";
import { until } from "../harness.mjs";

function rows(page) {
  return page.locator("table.messages tbody.message");
}

function liveStatus(page) {
  return page.locator(".live-tail [role=status]");
}

export default async function messages(ctx) {
  const page = ctx.page;
  const device = await ctx.ensureDevice();
  await ctx.signIn();
  const { org, group } = await ctx.organization();

  ctx.begin("messages: open the device's messages page");
  await page.goto(`${ctx.base}/organizations/${org.id}/groups/${group.id}/devices/${device.id}`);
  await page.getByRole("navigation", { name: "Device pages" }).getByRole("link", { name: "Messages" }).click();
  await page.waitForURL(/\/messages$/);
  await page.getByRole("heading", { name: /^Messages/ }).waitFor();
  await until("the live tail to connect", () => liveStatus(page).textContent(), { test: (t) => t === "Live" });
  const before = await rows(page).count();

  ctx.begin("messages: rows appear live while the simulator sends");
  const sim = ctx.sim([
    "--serial", String(ctx.device.serial),
    "--claim-token", ctx.device.claimToken,
    "--messages", "6",
    "--rate", "1",
  ]);
  await until("a live row", () => rows(page).count(), { test: (n) => n > before });
  ctx.check(page.url().endsWith("/messages"), "the page reloaded or moved");

  ctx.begin("messages: pause holds the table and counts new messages");
  await page.getByRole("button", { name: "Pause" }).click();
  const held = await rows(page).count();
  const pausedText = await until("a new message counted while paused", () => liveStatus(page).textContent(), {
    test: (t) => /^Paused: [1-9]\d* new$/.test(t ?? ""),
  });
  ctx.check((await rows(page).count()) === held, "rows changed while paused");
  const waiting = Number(/(\d+)/.exec(pausedText)[1]);

  ctx.begin("messages: resume shows what came while paused");
  const { code, output } = await sim.done;
  ctx.check(code === 0, `the simulator failed: ${output}`);
  await page.getByRole("button", { name: /^Resume/ }).click();
  await until("the held rows after resume", () => rows(page).count(), { test: (n) => n >= held + waiting });
  const stored = await ctx.api("GET", `/v1/messages?device_id=${device.id}&limit=100`);
  const shown = await until(`the table to show all ${stored.length} stored messages`, () => rows(page).count(), {
    test: (n) => n === stored.length,
  });
  ctx.check(stored.some((m) => m.type === "data"), "the simulator stored no data message");
  await ctx.screenshot("messages");

  ctx.begin("messages: a row opens with the keyboard to its JSON tree, raw bytes and deliveries");
  const dataRow = rows(page).filter({ has: page.getByRole("cell", { name: "data", exact: true }) }).first();
  const toggle = dataRow.locator("button.row-toggle");
  await toggle.focus();
  await page.keyboard.press("Enter");
  await until("the row to expand", () => toggle.getAttribute("aria-expanded"), { test: (v) => v === "true" });
  const details = dataRow.locator(".message-details");
  const branch = details.locator(".json-node button.json-toggle").nth(1);
  await branch.waitFor();
  ctx.check((await branch.getAttribute("aria-expanded")) === "true", "the JSON tree is not open");
  await branch.click();
  ctx.check((await branch.getAttribute("aria-expanded")) === "false", "a JSON branch did not fold");
  await branch.click();
  const dump = await details.locator("pre.dump").textContent();
  ctx.check(/^00000000 {2}[0-9a-f]{2}/.test(dump), `no hex dump: ${dump}`);
  await details.getByText(/No callback deliveries/).waitFor();
  await dataRow.evaluate((row) => row.scrollIntoView({ block: "start" }));
  await ctx.screenshot("message-expanded");
  await toggle.click();

  ctx.begin("messages: a since filter that matches nothing shows the empty state, clearing it the rows");
  const tomorrow = new Date(Date.now() + 86_400_000);
  const pad = (n) => String(n).padStart(2, "0");
  const local = `${tomorrow.getFullYear()}-${pad(tomorrow.getMonth() + 1)}-${pad(tomorrow.getDate())}T08:00:00`;
  await page.locator("input[name=since]").fill(local);
  await page.getByRole("button", { name: "Apply filter" }).click();
  await page.waitForURL(/since=/);
  await page.getByText("No messages match this filter.").waitFor();
  await page.reload();
  await page.getByText("No messages match this filter.").waitFor();
  ctx.check((await page.locator("input[name=since]").inputValue()).startsWith(local.slice(0, 16)),
    "the since filter did not survive a reload");
  await page.getByRole("button", { name: "Clear filter" }).click();
  await until("the rows back after clearing the filter", () => rows(page).count(), { test: (n) => n === shown });

  ctx.begin("messages: the NDJSON export holds the messages shown");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export NDJSON" }).click(),
  ]);
  ctx.check(/^messages-.+\.ndjson$/.test(download.suggestedFilename()), `file name ${download.suggestedFilename()}`);
  const lines = fs.readFileSync(await download.path(), "utf8").split("\n").filter((line) => line.trim());
  ctx.check(lines.length === shown, `the export has ${lines.length} lines, the table ${shown} rows`);
  ctx.check(lines.every((line) => typeof JSON.parse(line).id === "string"), "an export line is no message");

  ctx.begin("messages: delete one message after confirming");
  const victim = rows(page).first();
  const victimId = await victim.getAttribute("data-message-id");
  await victim.locator("button.row-toggle").click();
  await victim.getByRole("button", { name: "Delete this message" }).click();
  const dialog = page.getByRole("alertdialog");
  await dialog.waitFor();
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });
  await victim.getByRole("button", { name: "Delete this message" }).click();
  await dialog.getByRole("button", { name: "Delete message" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.locator(`tbody[data-message-id="${victimId}"]`).waitFor({ state: "detached" });
  ctx.check((await rows(page).count()) === shown - 1, "the deleted row is still counted");
  const left = await ctx.api("GET", `/v1/messages?device_id=${device.id}&limit=100`);
  ctx.check(!left.some((m) => m.id === victimId), "the API still has the deleted message");

  ctx.begin("messages: a phone's width scrolls the table, not the page");
  await rows(page).first().waitFor();
  await ctx.checkPhoneWidth("messages", "messages-phone");
}
