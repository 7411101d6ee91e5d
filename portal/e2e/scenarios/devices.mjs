// The devices pages: add the shared device through the form, watch it talk
// (the simulator) without reloading, its page, its sessions and their log,
// and the header's search.

/** Waits until `predicate(arg)` holds in the page (polled by the browser), up to `seconds`. */
async function until(page, predicate, arg, seconds = 30) {
  await page.waitForFunction(predicate, arg, { timeout: seconds * 1000, polling: 200 });
}

/** Whether the heat map in `selector` counts at least `least` messages. */
function heatMapCounts({ selector, least }) {
  const total = document.querySelector(`${selector} svg.heat-map`)?.getAttribute("data-total");
  return total !== null && total !== undefined && Number(total) >= least;
}

export default async function devices(ctx) {
  const { page, device } = ctx;
  await ctx.signIn();

  ctx.begin("open the default group's devices");
  await page.getByRole("link", { name: ctx.user.organization }).click();
  await page.getByRole("link", { name: "default", exact: true }).click();
  await page.waitForURL(/\/devices$/);
  await page.locator("section.data-list:not([aria-busy=true])").waitFor();

  const row = page.locator(`tr[data-serial="${device.serial}"]`);
  if ((await row.count()) === 0) {
    ctx.begin("a wrong claim token is refused at its field");
    await page.getByRole("button", { name: "Add device" }).click();
    await page.getByLabel("Serial number").fill(String(device.serial));
    await page.getByLabel("Claim token").fill("not hex");
    await page.getByRole("button", { name: "Add device" }).click();
    await page.getByText("32 hexadecimal digits.").waitFor();

    ctx.begin("add the device through the form");
    await page.getByLabel("Name", { exact: true }).fill(device.name);
    await page.getByLabel("Claim token").fill(device.claimToken);
    await page.getByLabel("DTLS PSK (optional)").fill(device.psk);
    await page.getByLabel("DTLS PSK (optional)").press("Enter");
    await page.getByText(`Added ${device.name} (hsn:${device.serial}).`).waitFor();
  }

  ctx.begin("the device is in the table, never seen");
  await row.waitFor();
  await row.getByRole("link", { name: device.name }).waitFor();
  const before = await row.locator("td.last-seen").innerText();
  ctx.check(before === "never" || /ago/.test(before), `last seen reads ${before}`);

  ctx.begin("the simulator sends 3 messages");
  const sim = ctx.sim(["--serial", String(device.serial), "--claim-token", device.claimToken, "--messages", "3"]);
  const { code, output } = await sim.done;
  ctx.check(code === 0, `nubes sim exited with ${code}: ${output}`);

  ctx.begin("without a reload, last seen and the heat map follow");
  const rowSelector = `tr[data-serial="${device.serial}"]`;
  await until(page, (selector) => /ago$/.test(document.querySelector(`${selector} td.last-seen`)?.textContent ?? ""), rowSelector);
  await until(page, heatMapCounts, { selector: rowSelector, least: 3 });
  await row.getByRole("link", { name: /Log of session/ }).waitFor();
  await ctx.screenshot("devices");

  ctx.begin("the device page shows what the simulator told");
  await row.getByRole("link", { name: device.name }).click();
  await page.getByRole("heading", { name: device.name, level: 1 }).waitFor();
  const hardware = page.locator("section", { has: page.getByRole("heading", { name: "What the last session told" }) });
  await hardware.getByText("HARDWARIO", { exact: true }).waitFor();
  await hardware.getByText("CHESTER-M", { exact: true }).waitFor();
  await hardware.getByText("v3.0.0", { exact: true }).waitFor();
  await hardware.getByText("mfw_nrf9160_1.3.5", { exact: true }).waitFor();
  await page.getByLabel("Config lines").getByText("app config interval-sample 60").waitFor();
  await until(page, heatMapCounts, { selector: "main", least: 3 }, 10);
  const crumbs = await page.locator("nav.crumbs").innerText();
  ctx.check(crumbs.includes("default") && crumbs.includes(device.name), `breadcrumb: ${crumbs}`);

  ctx.begin("an admin reveals the secrets on explicit click");
  ctx.check((await page.getByText(device.claimToken).count()) === 0, "the claim token shows before the click");
  await page.getByRole("button", { name: "Reveal claim token and PSK" }).click();
  await page.getByText(device.claimToken).waitFor();
  await page.getByRole("button", { name: "Hide secrets" }).click();
  await page.getByRole("button", { name: "Reveal claim token and PSK" }).waitFor();
  await page.getByRole("heading", { name: "Messages per day, last year" }).scrollIntoViewIfNeeded();
  await ctx.screenshot("device");
  await ctx.checkPhoneWidth("the device page");

  ctx.begin("the sessions, newest first");
  await page.getByRole("navigation", { name: "Device pages" }).getByRole("link", { name: "Sessions" }).click();
  await page.waitForURL(/\/sessions$/);
  const sessionLink = page.getByRole("link", { name: /Log of session/ }).first();
  await sessionLink.waitFor();
  await ctx.screenshot("sessions");

  ctx.begin("the session's log has [FLAP] packets both ways");
  await sessionLink.click();
  await page.waitForURL(/\/sessions\/\d+$/);
  const log = page.locator("table.log");
  await log.locator("td.flags").first().waitFor();
  const flapBothWays = await log.locator("tbody tr").evaluateAll((rows) => {
    const seen = new Set();
    for (const row of rows) {
      const flags = row.querySelector("td.flags")?.textContent?.trim() ?? "";
      const direction = row.querySelector("td[data-direction]")?.getAttribute("data-direction");
      if (/^\[[FLAPx]{4}\]$/.test(flags)) seen.add(direction);
    }
    return seen.has("in") && seen.has("out");
  });
  ctx.check(flapBothWays, "the log shows [FLAP]-notation packets in and out");
  await ctx.screenshot("session-log");
  await ctx.checkPhoneWidth("the session log");

  ctx.begin("a log row's message link opens that message, expanded");
  const messageLink = log.locator("tbody td a.mono").first();
  const messageId = await messageLink.getAttribute("title");
  await messageLink.click();
  await page.waitForURL(/\/messages\?message=/);
  const linked = page.getByRole("region", { name: "Linked message" });
  await linked.getByText("Decoded body").or(linked.getByText("Raw bytes")).first().waitFor();
  ctx.check(page.url().includes(messageId), `the linked message is ${messageId}`);
  await page.goBack();
  await log.locator("td.flags").first().waitFor();

  ctx.begin("filter the log by direction");
  await page.getByLabel("Direction").selectOption("out");
  await until(
    page,
    () =>
      document.querySelectorAll('table.log td[data-direction="in"]').length === 0 &&
      document.querySelectorAll('table.log td[data-direction="out"]').length > 0,
    undefined,
    10,
  );

  ctx.begin("the search finds the device by serial and Enter opens it");
  await page.getByRole("navigation", { name: "Breadcrumb" }).getByRole("link", { name: "Organizations" }).click();
  await page.waitForURL(/\/organizations$/);
  await page.locator("body").press("/");
  const search = page.getByRole("combobox", { name: "Search devices" });
  await search.waitFor();
  ctx.check(await search.evaluate((el) => el === document.activeElement), "/ focuses the search");
  await search.pressSequentially(`hsn:${device.serial}`);
  await page.getByRole("option", { name: new RegExp(device.name) }).waitFor();
  await search.press("ArrowDown");
  await ctx.screenshot("search");
  await search.press("Enter");
  await page.waitForURL(/\/devices\/[0-9a-f-]+$/);
  await page.getByRole("heading", { name: device.name, level: 1 }).waitFor();
}
