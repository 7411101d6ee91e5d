// Signs the browser in before `ctx.signIn()`. That one waits for the URL to
// match /organizations, which `/sign-in?next=/organizations` matches too, so
// a signed-out browser can slip past its sign-in form. Here the proof of a
// sign-in is the organization's link on the page, not the URL.

export async function signInSurely(ctx) {
  const { page, base, user } = ctx;
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`${base}/organizations`);
  const email = page.locator("input[name=email]");
  const organization = page.getByRole("link", { name: user.organization, exact: true });
  await email.or(organization).first().waitFor();
  if (new URL(page.url()).pathname === "/sign-in") {
    await email.fill(user.email);
    await page.fill("input[name=password]", user.password);
    await page.click("button[type=submit]");
  }
  await organization.waitFor();
  await ctx.signIn();
}
