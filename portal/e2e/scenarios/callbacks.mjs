// The callbacks pages (issue 6, being built): nothing checked yet.

export default async function callbacks(ctx) {
  await ctx.signIn();
}
