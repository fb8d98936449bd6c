// A real OpenID Connect provider (the `oidc-provider` package) for the console's SSO test.
// Usage: node oidc_provider.mjs PORT REDIRECT_URI CLIENT_SECRET
// Any login name is accepted by its development login page; the account's email is
// <login>@example.com and its groups come from GROUPS below (others get ["staff"]).
import Provider from "oidc-provider";

const [port, redirectUri, clientSecret] = process.argv.slice(2);
const GROUPS = { dana: ["hr-staff", "hr-reviewers"], sam: ["unmapped"] };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "aerodrome-console",
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_post",
    },
  ],
  scopes: ["openid", "email", "profile", "groups"],
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, name: id, groups: GROUPS[id] || ["staff"] };
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ["aerodrome-console-test-cookie-key"] },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`oidc-provider ready on ${port}`));
