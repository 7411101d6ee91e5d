// The devices pages (issue 6, being built): nothing checked yet.

export default async function devices(ctx) {
  await ctx.signIn();
}
