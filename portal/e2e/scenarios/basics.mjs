// Sign-in, navigation, an expired session, sign-out and the phone layout.

export default async function basics(ctx) {
  const { page, base, user } = ctx;

  ctx.begin("a signed-out visitor is sent to sign in");
  await page.goto(`${base}/`);
  await page.waitForURL(/\/sign-in/);
  await page.locator("input[name=email]").waitFor();
  await ctx.screenshot("sign-in");

  ctx.begin("a wrong password is refused");
  await page.fill("input[name=email]", user.email);
  await page.fill("input[name=password]", "not the password");
  await page.click("button[type=submit]");
  await page.getByText("Wrong email or password.").waitFor();

  ctx.begin("sign in and see the organizations");
  await page.fill("input[name=password]", user.password);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/organizations$/);
  await page.getByRole("link", { name: user.organization }).waitFor();
  await page.getByText(user.email).waitFor();
  await ctx.screenshot("organizations");

  ctx.begin("the organization's groups");
  await page.getByRole("link", { name: user.organization }).click();
  await page.waitForURL(/\/groups$/);
  await page.getByRole("link", { name: "default" }).waitFor();
  const crumbs = await page.locator("nav.crumbs").innerText();
  ctx.check(crumbs.includes("Organizations") && crumbs.includes(user.organization), `breadcrumb: ${crumbs}`);
  await ctx.screenshot("groups");

  ctx.begin("the group's devices: none yet");
  await page.getByRole("link", { name: "default" }).click();
  await page.waitForURL(/\/devices$/);
  await page.getByText("No devices in this group yet.").waitFor();

  ctx.begin("a reload of a client route keeps the page (SPA fallback)");
  await page.reload();
  await page.getByText("No devices in this group yet.").waitFor();

  ctx.begin("an expired session leads back to sign in");
  await page.evaluate(() => sessionStorage.setItem("nubes.access_token", "expired"));
  await page.goto(`${base}/organizations`);
  await page.getByText("Your session expired. Sign in again.").waitFor();

  ctx.begin("sign in again returns to the page, then sign out");
  await page.fill("input[name=email]", user.email);
  await page.fill("input[name=password]", user.password);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/organizations$/);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/sign-in/);
  const token = await page.evaluate(() => sessionStorage.getItem("nubes.access_token"));
  ctx.check(token === null, "the token is forgotten on sign-out");

  ctx.begin("the phone layout");
  await page.setViewportSize({ width: 390, height: 760 });
  await page.fill("input[name=email]", user.email);
  await page.fill("input[name=password]", user.password);
  await page.click("button[type=submit]");
  await page.waitForURL(/\/organizations$/);
  await page.getByRole("link", { name: user.organization }).click();
  await page.getByRole("link", { name: "default" }).waitFor();
  await ctx.screenshot("groups-phone");
}
