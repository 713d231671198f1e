// Interoperability check: the third-party relying-party library `openid-client` (npm, v6,
// by panva) signs a user in against a real `tessera serve` with OpenID Connect, and
// refuses what it must refuse.
//
// Run by tests/interop/node/run.sh, which starts the server, registers the clients and the
// user with the CLI, and passes everything through the environment:
//
//   TESSERA_URL                    issuer identifier (base URL)
//   TESSERA_REDIRECT_URI           the clients' registered redirect URI (never contacted)
//   TESSERA_POST_LOGOUT_URI        their registered post_logout_redirect_uri
//   TESSERA_PUBLIC_CLIENT_ID       public client (PKCE, no secret), scopes openid profile email
//   TESSERA_CONFIDENTIAL_CLIENT_ID confidential client (client_secret_basic), same scopes ...
//   TESSERA_CONFIDENTIAL_SECRET    ... and its secret
//   TESSERA_SERVICE_CLIENT_ID      client-credentials client, scope `read` only ...
//   TESSERA_SERVICE_SECRET         ... and its secret
//   TESSERA_USERNAME, TESSERA_PASSWORD   the user's login ...
//   TESSERA_USER_ID                ... its id (the expected `sub`) ...
//   TESSERA_USER_FULL_NAME, TESSERA_USER_EMAIL   ... and its profile (email verified)
//
// The browser is played with fetch (redirect: 'manual', cookies by hand): GET the
// authorization URL, POST the login form, read the Location of the 303. Nothing waits for a
// fixed time.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as client from 'openid-client';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run tests/interop/node/run.sh)`);
  return value;
}

const ISSUER = env('TESSERA_URL').replace(/\/$/, '');
const REDIRECT_URI = env('TESSERA_REDIRECT_URI');
const POST_LOGOUT_URI = env('TESSERA_POST_LOGOUT_URI');
const USERNAME = env('TESSERA_USERNAME');
const PASSWORD = env('TESSERA_PASSWORD');
const USER_ID = env('TESSERA_USER_ID');
const USER_FULL_NAME = env('TESSERA_USER_FULL_NAME');
const USER_EMAIL = env('TESSERA_USER_EMAIL');

const CLIENTS = {
  public: {
    id: env('TESSERA_PUBLIC_CLIENT_ID'),
    auth: () => client.None(),
    metadata: {},
  },
  confidential: {
    id: env('TESSERA_CONFIDENTIAL_CLIENT_ID'),
    auth: () => client.ClientSecretBasic(env('TESSERA_CONFIDENTIAL_SECRET')),
    metadata: {},
  },
};
const SERVICE = {
  id: env('TESSERA_SERVICE_CLIENT_ID'),
  auth: () => client.ClientSecretBasic(env('TESSERA_SERVICE_SECRET')),
  metadata: {},
};

const OIDC_SCOPE = 'openid profile email';
const AUTHORIZE_PATH = '/api/v2/auth/authorize';

// --- openid-client configuration ------------------------------------------------------------

/** openid-client's discovery for one registered client; `metadata` adds client metadata. */
function configure(which, metadata = {}) {
  return client.discovery(
    new URL(ISSUER),
    which.id,
    { ...which.metadata, ...metadata },
    which.auth(),
    // The issuer is plain http on the loopback interface. openid-client skips the signature
    // check of ID tokens that come straight from the token endpoint unless asked:
    // enableNonRepudiationChecks verifies them against the server's JWKS.
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks], timeout: 10 },
  );
}

// --- The browser, by hand ---------------------------------------------------------------------

/** A minimal cookie jar: name -> value, fed from Set-Cookie headers. */
class Jar {
  #cookies = new Map();

  take(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return this;
  }

  header() {
    return [...this.#cookies].map(([n, v]) => `${n}=${v}`).join('; ');
  }

  get size() {
    return this.#cookies.size;
  }
}

function unescape(s) {
  return s
    .replaceAll('&quot;', '"')
    .replaceAll('&#x27;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}

/** `name="..." value="..."` of every hidden input of the login page, in order. */
function hiddenInputs(html) {
  const out = [];
  for (const piece of html.split('<input type="hidden" ').slice(1)) {
    const name = /name="([^"]*)"/.exec(piece);
    const value = /value="([^"]*)"/.exec(piece);
    if (name && value) out.push([unescape(name[1]), unescape(value[1])]);
  }
  return out;
}

async function get(url, jar) {
  const headers = jar && jar.size ? { cookie: jar.header() } : {};
  return fetch(url, { redirect: 'manual', headers, signal: AbortSignal.timeout(10_000) });
}

/** The Location of a 303 response, as an absolute URL. */
async function locationOf(response, what) {
  const body = response.status === 303 ? '' : await response.text();
  assert.equal(response.status, 303, `${what}: 303 expected, got ${response.status}: ${body.slice(0, 500)}`);
  const location = response.headers.get('location');
  assert.ok(location, `${what}: the 303 has no Location`);
  return new URL(location, ISSUER);
}

/**
 * Plays the browser through the login page: GET `authorizationUrl` (200, the form), POST
 * the hidden inputs with the credentials and the page's cookie, and return the callback URL
 * the 303 points to, with the jar now holding the session cookie.
 */
async function browserLogin(authorizationUrl, jar = new Jar()) {
  const page = await get(authorizationUrl, jar);
  const html = await page.text();
  assert.equal(page.status, 200, `login page expected, got ${page.status}: ${html.slice(0, 500)}`);
  jar.take(page);
  assert.ok(jar.size > 0, 'the login page sets a cookie (CSRF binding)');
  const action = /<form method="post" action="([^"]*)"/.exec(html);
  assert.ok(action, 'the login page has a POST form');
  assert.equal(unescape(action[1]), AUTHORIZE_PATH);
  const form = new URLSearchParams(hiddenInputs(html));
  assert.ok(form.get('csrf_token'), 'the form carries a csrf_token');
  form.append('username', USERNAME);
  form.append('password', PASSWORD);
  const posted = await fetch(new URL(unescape(action[1]), ISSUER), {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
    signal: AbortSignal.timeout(10_000),
  });
  jar.take(posted);
  return locationOf(posted, 'sign-in');
}

/**
 * A fresh authorization request for `config` (PKCE S256, state, nonce unless `nonce` is
 * null), signed in through the login page, or with `jar`'s session when `prompt` is given.
 */
async function authorize(config, { scope = OIDC_SCOPE, nonce = client.randomNonce(), prompt, jar } = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const parameters = {
    redirect_uri: REDIRECT_URI,
    scope,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
  };
  if (nonce !== null) parameters.nonce = nonce;
  if (prompt) parameters.prompt = prompt;
  const url = client.buildAuthorizationUrl(config, parameters);
  jar ??= new Jar();
  const callback = prompt
    ? await locationOf(await get(url, jar), `authorization request with prompt=${prompt}`)
    : await browserLogin(url, jar);
  return { callback, pkceCodeVerifier, state, nonce: nonce ?? undefined, jar };
}

/** authorizationCodeGrant with the checks of `flow`. */
function redeem(config, flow, checks = {}) {
  return client.authorizationCodeGrant(config, flow.callback, {
    pkceCodeVerifier: flow.pkceCodeVerifier,
    expectedState: flow.state,
    expectedNonce: flow.nonce,
    ...checks,
  });
}

function decodeJwtPart(jwt, index) {
  return JSON.parse(Buffer.from(jwt.split('.')[index], 'base64url').toString('utf8'));
}

/** OpenID Connect Core §3.1.3.6: base64url of the left half of SHA-256(access_token). */
function atHash(accessToken) {
  const digest = createHash('sha256').update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** The parsed challenges of a rejected userinfo request (openid-client's error.cause). */
function bearerChallenge(error) {
  const challenges = Array.isArray(error.cause) ? error.cause : [];
  return challenges.find((c) => c.scheme?.toLowerCase() === 'bearer');
}

// --- The tests --------------------------------------------------------------------------------

for (const [kind, which] of Object.entries(CLIENTS)) {
  describe(`${kind} client (${which.id})`, () => {
    // Tests 2-4 share one sign-in; each awaits it, so a failure shows in all of them.
    let signedIn;
    const signIn = () =>
      (signedIn ??= (async () => {
        const config = await configure(which);
        const flow = await authorize(config);
        const tokens = await redeem(config, flow);
        return { config, flow, tokens };
      })());

    test('1. discovery: openid-client accepts the metadata, which has the OIDC fields', async () => {
      const config = await configure(which);
      const m = config.serverMetadata();
      // Every field is checked, and every mismatch reported at once.
      const problems = [];
      const expect = (field, actual, expected) => {
        try {
          assert.deepEqual(actual, expected);
        } catch {
          problems.push(`${field}: ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
        }
      };
      const expectHas = (field, list, items) => {
        const missing = items.filter((item) => !Array.isArray(list) || !list.includes(item));
        if (missing.length) problems.push(`${field}: ${JSON.stringify(list)} lacks ${missing.join(', ')}`);
      };
      expect('issuer', m.issuer, ISSUER);
      expect('authorization_endpoint', m.authorization_endpoint, `${ISSUER}/api/v2/auth/authorize`);
      expect('token_endpoint', m.token_endpoint, `${ISSUER}/api/v2/auth/token`);
      expect('userinfo_endpoint', m.userinfo_endpoint, `${ISSUER}/api/v2/auth/userinfo`);
      expect('end_session_endpoint', m.end_session_endpoint, `${ISSUER}/api/v2/auth/logout`);
      expect('jwks_uri is on the issuer', m.jwks_uri?.startsWith(`${ISSUER}/`), true);
      expect('id_token_signing_alg_values_supported', m.id_token_signing_alg_values_supported, ['RS256']);
      expect('subject_types_supported', m.subject_types_supported, ['public']);
      expect('response_types_supported', m.response_types_supported, ['code']);
      expect('response_modes_supported', m.response_modes_supported, ['query']);
      expect('code_challenge_methods_supported', m.code_challenge_methods_supported, ['S256']);
      expect('authorization_response_iss_parameter_supported', m.authorization_response_iss_parameter_supported, true);
      expectHas('scopes_supported', m.scopes_supported, ['openid', 'profile', 'email']);
      expectHas('claims_supported', m.claims_supported, [
        'sub', 'name', 'preferred_username', 'email', 'email_verified',
      ]);
      assert.deepEqual(problems, [], `discovery metadata:\n  ${problems.join('\n  ')}`);
      // The JWKS the ID tokens are checked against is there and holds RSA keys.
      const jwks = await (await fetch(m.jwks_uri)).json();
      assert.ok(jwks.keys?.some((k) => k.kty === 'RSA'), 'the JWKS holds an RSA key');
    });

    test('2. code flow (PKCE S256, nonce, state): openid-client validates the callback and the ID token', async () => {
      const { flow, tokens } = await signIn();
      // The authorization response (RFC 9207): iss and state, no error.
      assert.equal(flow.callback.origin + flow.callback.pathname, REDIRECT_URI);
      assert.equal(flow.callback.searchParams.get('iss'), ISSUER);
      assert.equal(flow.callback.searchParams.get('state'), flow.state);

      assert.equal(tokens.token_type.toLowerCase(), 'bearer');
      assert.ok(tokens.id_token, 'the token response has an id_token');
      const header = decodeJwtPart(tokens.id_token, 0);
      assert.equal(header.alg, 'RS256');
      assert.equal(header.typ, 'JWT');
      assert.ok(header.kid, 'the ID token header names its key');

      // openid-client has checked the signature (against the JWKS), iss, aud, exp, iat and
      // nonce.
      const claims = tokens.claims();
      const now = Math.floor(Date.now() / 1000);
      assert.equal(claims.iss, ISSUER);
      assert.equal(claims.sub, USER_ID, 'sub is the user id');
      assert.notEqual(claims.sub, USERNAME, 'sub is not the login name');
      assert.equal(claims.aud, which.id);
      assert.equal(claims.azp, which.id);
      assert.equal(claims.nonce, flow.nonce);
      assert.equal(typeof claims.auth_time, 'number');
      assert.ok(Math.abs(claims.auth_time - now) < 120, `auth_time ${claims.auth_time} is now (${now})`);
      assert.ok(claims.exp > now, 'exp is in the future');
      assert.ok(Math.abs(claims.iat - now) < 120, `iat ${claims.iat} is now (${now})`);
      assert.equal(claims.at_hash, atHash(tokens.access_token), 'at_hash matches the access token');
      // profile and email scopes.
      assert.equal(claims.name, USER_FULL_NAME);
      assert.equal(claims.preferred_username, USERNAME);
      assert.equal(claims.email, USER_EMAIL);
      assert.equal(claims.email_verified, true);
    });

    test('3. fetchUserInfo (expected subject) returns the profile and email claims', async () => {
      const { config, tokens } = await signIn();
      const info = await client.fetchUserInfo(config, tokens.access_token, USER_ID);
      assert.equal(info.sub, USER_ID);
      assert.equal(info.name, USER_FULL_NAME);
      assert.equal(info.preferred_username, USERNAME);
      assert.equal(info.email, USER_EMAIL);
      assert.equal(info.email_verified, true);
      // And openid-client does check the subject it is given.
      await assert.rejects(
        client.fetchUserInfo(config, tokens.access_token, `${USER_ID}-not`),
        (e) => /"sub"/.test(e.cause?.message),
      );
    });

    test('4. refreshTokenGrant works; a new ID token names the same subject', async (t) => {
      const { config, tokens } = await signIn();
      assert.ok(tokens.refresh_token, 'the code exchange issued a refresh token');
      const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
      assert.ok(refreshed.access_token);
      assert.notEqual(refreshed.access_token, tokens.access_token);
      t.diagnostic(`the refresh response ${refreshed.id_token ? 'has' : 'has no'} id_token`);
      if (refreshed.id_token) {
        const claims = refreshed.claims();
        const original = tokens.claims();
        assert.equal(claims.sub, USER_ID);
        assert.equal(claims.iss, ISSUER);
        assert.equal(claims.aud, which.id);
        assert.equal(claims.azp, which.id);
        assert.equal(claims.auth_time, original.auth_time, 'auth_time is the original authentication');
        assert.equal(claims.at_hash, atHash(refreshed.access_token));
      }
      // The refresh token rotates (or stays usable): the new one works in turn.
      const next = refreshed.refresh_token ?? tokens.refresh_token;
      const again = await client.refreshTokenGrant(config, next);
      assert.ok(again.access_token);
      if (again.id_token) assert.equal(again.claims().sub, USER_ID);
    });

    test('5. buildEndSessionUrl (id_token_hint, post_logout_redirect_uri, state): 303 back, session ended', async () => {
      const config = await configure(which);
      const flow = await authorize(config);
      const tokens = await redeem(config, flow);
      // The browser session is live: another authorization request skips the login page.
      const ssoUrl = client.buildAuthorizationUrl(config, {
        redirect_uri: REDIRECT_URI,
        scope: OIDC_SCOPE,
        nonce: client.randomNonce(),
        code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
      });
      const sso = await locationOf(await get(ssoUrl, flow.jar), 'authorization request with a session');
      assert.ok(sso.searchParams.get('code'), `a code expected: ${sso}`);

      const state = client.randomState();
      const url = client.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token,
        post_logout_redirect_uri: POST_LOGOUT_URI,
        state,
      });
      const sessionCookie = flow.jar.header();
      const back = await locationOf(await get(url, flow.jar), 'logout');
      assert.equal(back.origin + back.pathname, POST_LOGOUT_URI);
      assert.equal(back.searchParams.get('state'), state);

      // The session is over server-side: the old cookie, sent again even though the
      // logout response cleared it, no longer skips the login page.
      const stale = await fetch(ssoUrl, {
        redirect: 'manual',
        headers: { cookie: sessionCookie },
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(stale.status, 200, `the login page again after signing out, got ${stale.status}`);
    });
  });
}

describe('RP-initiated logout', () => {
  test('5b. id_token_hint alone (no client_id) identifies the client for post_logout_redirect_uri', async () => {
    const config = await configure(CLIENTS.public);
    const flow = await authorize(config);
    const tokens = await redeem(config, flow);
    const state = client.randomState();
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: POST_LOGOUT_URI,
      state,
    });
    url.searchParams.delete('client_id');
    const back = await locationOf(await get(url, flow.jar), 'logout');
    assert.equal(back.origin + back.pathname, POST_LOGOUT_URI);
    assert.equal(back.searchParams.get('state'), state);
  });
});

describe('what openid-client must refuse', () => {
  test('6. a nonce other than the one sent: authorizationCodeGrant rejects on the nonce', async () => {
    const config = await configure(CLIENTS.public);
    const flow = await authorize(config);
    const expectedNonce = client.randomNonce();
    assert.notEqual(expectedNonce, flow.nonce);
    const error = await redeem(config, flow, { expectedNonce }).then(
      () => assert.fail('authorizationCodeGrant accepted an ID token with another nonce'),
      (e) => e,
    );
    assert.match(`${error.message} ${error.cause?.message}`, /nonce/i, String(error));
    // The ID token did carry a nonce: the one the request sent.
    assert.equal(error.cause?.cause?.claim, 'nonce');
    assert.equal(error.cause?.cause?.claims?.nonce, flow.nonce);
  });

  test('6b. a public client asking for openid without a nonce gets error=invalid_request', async () => {
    const config = await configure(CLIENTS.public);
    const pkceCodeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: OIDC_SCOPE,
      state,
      code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
      code_challenge_method: 'S256',
    });
    const back = await locationOf(await get(url), 'authorization request without nonce');
    assert.equal(back.origin + back.pathname, REDIRECT_URI);
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.equal(back.searchParams.get('state'), state);
    await assert.rejects(
      client.authorizationCodeGrant(config, back, { pkceCodeVerifier, expectedState: state }),
      (e) => e instanceof client.AuthorizationResponseError && e.error === 'invalid_request',
    );
  });

  test('7. prompt=none without a session: error=login_required, an AuthorizationResponseError', async () => {
    const config = await configure(CLIENTS.public);
    const flow = await authorize(config, { prompt: 'none' });
    const back = flow.callback;
    assert.equal(back.origin + back.pathname, REDIRECT_URI);
    assert.equal(back.searchParams.get('error'), 'login_required');
    assert.equal(back.searchParams.get('state'), flow.state);
    assert.equal(back.searchParams.get('iss'), ISSUER);
    assert.equal(back.searchParams.get('code'), null);
    const error = await redeem(config, flow).then(
      () => assert.fail('authorizationCodeGrant accepted an error response'),
      (e) => e,
    );
    assert.ok(error instanceof client.AuthorizationResponseError, String(error));
    assert.equal(error.error, 'login_required');
  });

  test('7b. prompt=none with a session: a code at once, and the same user', async () => {
    const config = await configure(CLIENTS.public);
    const first = await authorize(config);
    await redeem(config, first);
    const silent = await authorize(config, { prompt: 'none', jar: first.jar });
    assert.ok(silent.callback.searchParams.get('code'), `a code expected: ${silent.callback}`);
    const tokens = await redeem(config, silent);
    assert.equal(tokens.claims().sub, USER_ID);
  });

  test('8a. userinfo with a user token without the openid scope: 403 insufficient_scope', async () => {
    const config = await configure(CLIENTS.confidential);
    const flow = await authorize(config, { scope: 'profile email', nonce: null });
    const tokens = await redeem(config, flow);
    assert.equal(tokens.id_token, undefined, 'no ID token without openid');
    assert.ok(!tokens.scope?.split(' ').includes('openid'), `granted scope ${tokens.scope}`);
    const error = await client.fetchUserInfo(config, tokens.access_token, client.skipSubjectCheck).then(
      () => assert.fail('userinfo answered a token without the openid scope'),
      (e) => e,
    );
    assert.ok(error instanceof client.WWWAuthenticateChallengeError, String(error));
    assert.equal(error.status, 403);
    assert.equal(bearerChallenge(error)?.parameters?.error, 'insufficient_scope', JSON.stringify(error.cause));
  });

  test('8b. userinfo with a client-credentials token: 403 insufficient_scope', async () => {
    const config = await configure(SERVICE);
    const tokens = await client.clientCredentialsGrant(config, { scope: 'read' });
    const error = await client.fetchUserInfo(config, tokens.access_token, client.skipSubjectCheck).then(
      () => assert.fail('userinfo answered a client-credentials token'),
      (e) => e,
    );
    assert.ok(error instanceof client.WWWAuthenticateChallengeError, String(error));
    assert.equal(error.status, 403);
    assert.equal(bearerChallenge(error)?.parameters?.error, 'insufficient_scope', JSON.stringify(error.cause));
  });

  test('8c. userinfo with a forged token: 401 invalid_token', async () => {
    const config = await configure(CLIENTS.public);
    const tokens = await redeem(config, await authorize(config));
    // The same token with its last characters (the signature's, for a JWT) changed.
    const token = tokens.access_token;
    const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const error = await client.fetchUserInfo(config, forged, USER_ID).then(
      () => assert.fail('userinfo answered a forged token'),
      (e) => e,
    );
    assert.ok(error instanceof client.WWWAuthenticateChallengeError, String(error));
    assert.equal(error.status, 401);
    assert.equal(bearerChallenge(error)?.parameters?.error, 'invalid_token', JSON.stringify(error.cause));
  });

  test('8d. userinfo with a revoked access token: 401 invalid_token', async () => {
    const config = await configure(CLIENTS.confidential);
    const tokens = await redeem(config, await authorize(config));
    // It works before the revocation ...
    assert.equal((await client.fetchUserInfo(config, tokens.access_token, USER_ID)).sub, USER_ID);
    await client.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
    // ... and not after.
    const error = await client.fetchUserInfo(config, tokens.access_token, USER_ID).then(
      () => assert.fail('userinfo answered a revoked token'),
      (e) => e,
    );
    assert.ok(error instanceof client.WWWAuthenticateChallengeError, String(error));
    assert.equal(error.status, 401);
    assert.equal(bearerChallenge(error)?.parameters?.error, 'invalid_token', JSON.stringify(error.cause));
  });

  test('9. an ID token past its exp (client clock skewed ahead): openid-client rejects it as expired', async () => {
    // How long the server's ID tokens live, from one it issues now ...
    const plain = await configure(CLIENTS.public);
    const probe = await redeem(plain, await authorize(plain));
    const { iat, exp } = probe.claims();
    const lifetime = exp - iat;
    assert.ok(lifetime > 0 && lifetime <= 24 * 3600, `ID token lifetime ${lifetime} s`);
    // ... then a client whose clock runs that much plus an hour ahead (at least two hours).
    const skew = Math.max(2 * 3600, lifetime + 3600);
    const config = await configure(CLIENTS.public, { [client.clockSkew]: skew });
    const flow = await authorize(config);
    const error = await redeem(config, flow).then(
      () => assert.fail('authorizationCodeGrant accepted an expired ID token'),
      (e) => e,
    );
    assert.match(`${error.message} ${error.cause?.message}`, /exp/i, String(error));
    assert.equal(error.cause?.cause?.claim, 'exp');
    assert.equal(error.cause?.cause?.claims?.sub, USER_ID, 'the rejected token was the real ID token');
  });

  test('10. an ID token altered after signing: rejected against the JWKS (the signature is checked)', async () => {
    // Guards the other tests: they rely on openid-client verifying the server's signature.
    const config = await configure(CLIENTS.public);
    const token_endpoint = config.serverMetadata().token_endpoint;
    config[client.customFetch] = async (url, options) => {
      const response = await fetch(url, options);
      if (url !== token_endpoint || response.status !== 200) return response;
      const body = await response.json();
      const [h, p, sig] = body.id_token.split('.');
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
      payload.email = 'mallory@interop.test';
      body.id_token = [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), sig].join('.');
      return Response.json(body, { status: 200, headers: { 'cache-control': 'no-store' } });
    };
    const error = await redeem(config, await authorize(config)).then(
      () => assert.fail('authorizationCodeGrant accepted an altered ID token'),
      (e) => e,
    );
    assert.match(`${error.message} ${error.cause?.message}`, /signature/i, String(error));
  });
});
