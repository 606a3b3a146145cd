// A small OpenID Connect provider for the single sign-on tests, built on the oidc-provider
// package (the certified implementation). Usage: node provider.mjs PORT REDIRECT_URI
// It prints "ready <issuer>" once it listens on 127.0.0.1:PORT.
//
// Its login page asks for a user name and offers a "second factor" checkbox: with it ticked
// the ID token says amr ["pwd", "otp"] and acr "mfa", without it amr ["pwd"] and acr "pwd",
// the way Keycloak, Entra ID or Okta report how the person authenticated.
import http from 'node:http';
import { URLSearchParams } from 'node:url';
import Provider from 'oidc-provider';

const [port, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const people = {
  alice: { email: 'alice@bank.example', name: 'Alice Approver', groups: ['rg-auditors', 'rg-signers'] },
  bob: { email: 'bob@bank.example', name: 'Bob Builder', groups: [] },
};

const configuration = {
  clients: [{
    client_id: 'releasegate',
    client_secret: 'releasegate-test-client-secret',
    redirect_uris: [redirectUri],
    // RP-initiated logout comes back to the admin's login page.
    post_logout_redirect_uris: [redirectUri.replace('/oidc/callback/', '/admin/login/')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  pkce: { required: () => true },
  claims: {
    // amr and acr in every ID token, as Keycloak, Entra ID and Okta put them there.
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  acrValues: ['pwd', 'mfa'],
  cookies: { keys: ['releasegate-tests-only-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, id) {
    const person = people[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: person.email,
          email_verified: true,
          name: person.name,
          preferred_username: id,
          groups: person.groups,
        };
      },
    };
  },
  // A first-party client: no consent page; the grant covers what was asked for.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups', 'amr', 'acr']);
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { Session: 600, Interaction: 600, Grant: 600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
};

const provider = new Provider(issuer, configuration);
const handler = provider.callback();

function page(uid) {
  return `<!doctype html><html><body><h1>Test identity provider</h1>
<form method="post" action="/interaction/${uid}">
<label>User <input name="login" id="login"></label>
<label>Password <input name="password" id="password" type="password"></label>
<label><input type="checkbox" name="mfa" id="mfa" value="1"> Second factor</label>
<button type="submit" id="sign-in">Sign in</button></form></body></html>`;
}

async function body(req) {
  let data = '';
  for await (const chunk of req) data += chunk;
  return new URLSearchParams(data);
}

const server = http.createServer(async (req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)/);
  if (!match) return handler(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(page(details.uid));
    }
    const form = await body(req);
    const login = form.get('login');
    if (!people[login]) {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end(page(details.uid));
    }
    const mfa = form.get('mfa') === '1';
    await provider.interactionFinished(req, res, {
      login: { accountId: login, amr: mfa ? ['pwd', 'otp'] : ['pwd'], acr: mfa ? 'mfa' : 'pwd' },
    }, { mergeWithLastSubmission: false });
  } catch (error) {
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(error));
  }
});

server.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
