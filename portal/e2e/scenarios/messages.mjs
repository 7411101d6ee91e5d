// The messages pages (issue 6, being built): nothing checked yet.

export default async function messages(ctx) {
  await ctx.signIn();
}
