// The downlinks pages (issue 6, being built): nothing checked yet.

export default async function downlinks(ctx) {
  await ctx.signIn();
}
