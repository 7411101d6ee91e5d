// Groups and the organization's settings as the e2e admin: a group made,
// renamed and deleted; a member added with a new account, re-roled and
// removed; an API key shown once, working, revoked and refused; the audit
// log listing all of it.

import { until } from "../harness.mjs";

const second = { email: "second@example.com", password: "another long secret" };

async function manageGroups(ctx) {
  const { page } = ctx;
  ctx.begin("groups: create one");
  await page.getByRole("link", { name: ctx.user.organization, exact: true }).click();
  await page.waitForURL(/\/groups$/);
  await page.getByRole("textbox", { name: "New group" }).fill("greenhouse");
  await page.getByRole("button", { name: "Create group" }).click();
  await page.getByRole("link", { name: "greenhouse", exact: true }).waitFor();

  ctx.begin("groups: a taken name answers the API's message");
  await page.getByRole("textbox", { name: "New group" }).fill("greenhouse");
  await page.getByRole("button", { name: "Create group" }).click();
  await page.getByRole("alert").filter({ hasText: "has a group named" }).waitFor();

  ctx.begin("groups: rename it, with the keyboard");
  await page.getByRole("button", { name: "Rename group greenhouse" }).click();
  const name = page.getByRole("textbox", { name: "Name of group greenhouse" });
  await name.fill("orchard");
  await name.press("Enter");
  await page.getByRole("link", { name: "orchard", exact: true }).waitFor();
  await ctx.screenshot("groups-manage");

  ctx.begin("groups: delete it after confirming");
  await page.getByRole("button", { name: "Delete group orchard" }).click();
  await page.getByRole("dialog", { name: "Delete group orchard?" }).getByRole("button", { name: "Delete" }).click();
  await page.getByRole("link", { name: "orchard", exact: true }).waitFor({ state: "detached" });
}

async function manageMembers(ctx) {
  const { page } = ctx;
  ctx.begin("members: add a new account with a password");
  const form = page.getByRole("form", { name: "Add a member" });
  await form.getByRole("textbox", { name: "Email" }).fill(second.email);
  await form.getByRole("combobox", { name: "Role" }).selectOption("member");
  await form.getByLabel("Password for a new account").fill(second.password);
  await form.getByRole("button", { name: "Add member" }).click();
  const members = page.locator("section", { has: page.getByRole("heading", { name: "Members" }) });
  const row = members.locator("tbody tr", { hasText: second.email });
  await row.waitFor();

  ctx.begin("members: make them a viewer");
  await row.getByRole("combobox", { name: `Role of ${second.email}` }).selectOption("viewer");
  await row.getByRole("button", { name: "Save role" }).click();
  await row.getByRole("button", { name: "Save role" }).waitFor({ state: "detached" });
  const roles = await ctx.api("GET", `/v1/organizations/${(await ctx.organization()).org.id}/members`);
  ctx.check(roles.find((m) => m.email === second.email)?.role === "viewer", "the role changed on the server");

  ctx.begin("members: an admin may not make an owner (no owner offered)");
  const options = await row.getByRole("combobox").locator("option").allInnerTexts();
  ctx.check(!options.includes("owner"), `an admin is offered: ${options.join(", ")}`);

  ctx.begin("members: remove them, Escape first cancels");
  await row.getByRole("button", { name: `Remove ${second.email}` }).click();
  const dialog = page.getByRole("dialog", { name: `Remove ${second.email}?` });
  await dialog.waitFor();
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  await row.getByRole("button", { name: `Remove ${second.email}` }).click();
  await dialog.getByRole("button", { name: "Remove" }).click();
  await row.waitFor({ state: "detached" });
}

async function manageKeys(ctx) {
  const { page, base } = ctx;
  ctx.begin("API keys: create one, shown once");
  const form = page.getByRole("form", { name: "New API key" });
  await form.getByRole("textbox", { name: "Label" }).fill("e2e-script");
  await form.getByRole("combobox", { name: "Scope" }).selectOption("read");
  await form.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Your new API key" });
  await dialog.getByText("you will not see it again").waitFor();
  const key = await dialog.locator("input[data-secret]").inputValue();
  ctx.check(key.length > 20, "the dialog shows the key");
  ctx.check(!page.url().includes(key), "the key is not in the URL");
  await ctx.screenshot("api-key-created");
  await dialog.getByRole("button", { name: "I have copied it" }).click();
  await dialog.waitFor({ state: "hidden" });
  ctx.check((await page.locator("input[data-secret]").count()) === 0, "the key is gone with the dialog");
  const me = () => fetch(`${base}/v1/auth/me`, { headers: { authorization: `Bearer ${key}` } });

  ctx.begin("API keys: the key works");
  ctx.check((await me()).status === 200, "the new key is accepted");

  ctx.begin("API keys: revoke it, and it is refused");
  const keys = page.locator("section", { has: page.getByRole("heading", { name: "API keys" }) });
  const row = keys.locator("tbody tr", { hasText: "e2e-script" });
  await row.getByRole("button", { name: "Revoke key e2e-script" }).click();
  await page.getByRole("dialog", { name: "Revoke key e2e-script?" }).getByRole("button", { name: "Revoke" }).click();
  await row.getByText("revoked").waitFor();
  await until("the revoked key refused", async () => (await me()).status === 401);
}

async function readAudit(ctx) {
  const { page } = ctx;
  ctx.begin("the audit log lists the actions, newest first");
  const log = page.locator("section", { has: page.getByRole("heading", { name: "Audit log" }) });
  const wanted = ["api_key.revoke", "api_key.create", "member.remove", "member.update", "member.add", "group.delete", "group.update", "group.create"];
  await until("every action in the audit log", async () => {
    const text = await log.locator("tbody").innerText().catch(() => "");
    return wanted.every((action) => text.includes(action));
  });
  const actions = await log.locator("tbody td.mono").allInnerTexts();
  ctx.check(actions[0] === "api_key.revoke", `newest first: ${actions.slice(0, 3).join(", ")}`);
  await log.getByText(second.email).first().waitFor();
  await log.getByRole("heading", { name: "Audit log" }).scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, -16));
  await ctx.screenshot("settings");

  ctx.begin("the audit log filtered by a family");
  await log.getByRole("textbox", { name: "Action or family" }).fill("member");
  await log.getByRole("button", { name: "Filter" }).click();
  await until("only member entries", async () => {
    const shown = await log.locator("tbody td.mono").allInnerTexts();
    return shown.length >= 3 && shown.every((action) => action.startsWith("member."));
  });
}

export default async function settings(ctx) {
  const { page } = ctx;
  await ctx.signIn();
  await manageGroups(ctx);

  ctx.begin("open the organization settings from the groups page");
  await page.getByRole("link", { name: "Organization settings" }).click();
  await page.waitForURL(/\/settings$/);
  await page.getByRole("heading", { name: `Settings of ${ctx.user.organization}` }).waitFor();

  ctx.begin("retention: keep messages 30 days");
  await page.getByLabel("Keep messages for (days)").fill("30");
  await page.getByText("Shortening deletes what is older than 30 days.").waitFor();
  await page.locator("form[aria-labelledby=retention-title]").getByRole("button", { name: "Save" }).click();
  await page.getByText("Saved.").waitFor();
  const { org } = await ctx.organization();
  const shown = await ctx.api("GET", `/v1/organizations/${org.id}`);
  ctx.check(shown.message_retention_days === 30, `retention is ${shown.message_retention_days}`);

  await manageMembers(ctx);
  await manageKeys(ctx);
  await readAudit(ctx);

  ctx.begin("settings: readable on a phone, wide tables scroll inside their frame");
  await ctx.checkPhoneWidth("settings");
}
