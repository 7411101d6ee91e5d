// The settings pages (issue 6, being built): nothing checked yet.

export default async function settings(ctx) {
  await ctx.signIn();
}
