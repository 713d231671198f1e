// Real-browser end-to-end tests of Tessera's sign-in pages: Debian's chromium driven by
// playwright-core, the access token verified with jose against the server's JWKS.
//
// Run by tests/browser/run.sh, which starts `tessera serve --demo` and passes everything
// through the environment:
//
//   TESSERA_URL                 issuer identifier (base URL)
//   TESSERA_DEMO_CLIENT_ID      the demo's public client (code flow + PKCE) ...
//   TESSERA_DEMO_CLIENT_NAME    ... its display name, shown on the login page ...
//   TESSERA_DEMO_REDIRECT_URI   ... its registered redirect URI (the demo callback page)
//   TESSERA_DEMO_AUDIENCE       the `aud` the server puts in the demo client's tokens
//   TESSERA_USERNAME            the demo user ...
//   TESSERA_PASSWORD            ... and the password the demo printed
//   TESSERA_BIN                 the tessera binary, for `client create` and `user list` ...
//   TESSERA_DATA_DIR            ... on the running server's data directory
//   TESSERA_SERVER_LOG          the server's log file
//   TESSERA_CHROMIUM            the browser (/usr/bin/chromium)
//   TESSERA_SCREENSHOT_DIR      where the page screenshots go
//   TESSERA_READ_SCOPE_DESCRIPTION  the server's description of the `read` scope
//
// Nothing waits for a fixed time: every wait is on a condition (a URL, a response, an
// element), bounded by Playwright's or the test's timeout.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { createRemoteJWKSet, jwtVerify } from 'jose';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run tests/browser/run.sh)`);
  return value;
}

const ISSUER = env('TESSERA_URL').replace(/\/$/, '');
const CLIENT_ID = env('TESSERA_DEMO_CLIENT_ID');
const CLIENT_NAME = env('TESSERA_DEMO_CLIENT_NAME');
const REDIRECT_URI = env('TESSERA_DEMO_REDIRECT_URI');
const AUDIENCE = env('TESSERA_DEMO_AUDIENCE');
const USERNAME = env('TESSERA_USERNAME');
const PASSWORD = env('TESSERA_PASSWORD');
const BIN = env('TESSERA_BIN');
const DATA_DIR = env('TESSERA_DATA_DIR');
const SERVER_LOG = env('TESSERA_SERVER_LOG');
const SCREENSHOTS = env('TESSERA_SCREENSHOT_DIR');
const READ_SCOPE_DESCRIPTION = env('TESSERA_READ_SCOPE_DESCRIPTION');
const THIRD_PARTY_AUDIENCE = 'https://api.browser.test';

const TEST_TIMEOUT = 60_000;
const VIEWPORT = { width: 800, height: 600 };

let browser;
let metadata;
let jwks;
let callback; // a loopback "client" that records every request it gets

before(async () => {
  const response = await fetch(`${ISSUER}/.well-known/oauth-authorization-server`);
  assert.equal(response.status, 200);
  metadata = await response.json();
  assert.equal(metadata.issuer, ISSUER);
  jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  callback = await startCallbackServer();
  browser = await chromium.launch({
    executablePath: process.env.TESSERA_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Chromium refuses to start as root with its sandbox on ("Running as root without
    // --no-sandbox is not supported"); CI and these machines run as root. As any other
    // user the sandbox stays on.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (callback ? callback.server.close(resolve) : resolve()));
});

// --- helpers ---------------------------------------------------------------------------------

const base64url = (bytes) => Buffer.from(bytes).toString('base64url');

/** A PKCE pair (RFC 7636 §4.1-4.2): a 43-character verifier and its S256 challenge. */
function pkce() {
  const verifier = base64url(randomBytes(32));
  const challenge = base64url(createHash('sha256').update(verifier, 'ascii').digest());
  return { verifier, challenge };
}

function authorizeUrl(params) {
  const url = new URL(metadata.authorization_endpoint);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

/** A demo-client authorization request with PKCE S256; returns its URL, state and verifier. */
function demoRequest() {
  const { verifier, challenge } = pkce();
  const state = base64url(randomBytes(16));
  const url = authorizeUrl({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope: 'read',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return { url, state, verifier };
}

/** A fresh browser context (no cookies) and page at the size the screenshots use. */
async function newPage() {
  const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
  const page = await context.newPage();
  return { context, page };
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** A loopback HTTP server standing in for a client's redirect URI. */
async function startCallbackServer() {
  const hits = [];
  const server = createServer((req, res) => {
    hits.push(new URL(req.url, 'http://127.0.0.1'));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>callback</title><h1>Back at the client</h1>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { server, hits, base: `http://127.0.0.1:${port}` };
}

function tessera(...args) {
  return execFileSync(BIN, args, {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', TESSERA_DATA_DIR: DATA_DIR },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function userId(username) {
  const users = JSON.parse(tessera('user', 'list', '--format', 'json'));
  const user = users.find((u) => u.username === username);
  assert.ok(user, `user ${username} not found`);
  return user.id;
}

/** Redeems a code at the token endpoint, as a public client (RFC 6749 §4.1.3, RFC 7636). */
async function redeem(code, verifier, { clientId = CLIENT_ID, redirectUri = REDIRECT_URI } = {}) {
  const response = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: clientId,
      code,
      code_verifier: verifier,
      redirect_uri: redirectUri,
    }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(response.headers.get('cache-control'), 'no-store');
  assert.equal(body.token_type.toLowerCase(), 'bearer');
  assert.ok(body.access_token, JSON.stringify(body));
  return body;
}

/** Verifies an access token as a resource server would (RFC 9068 §4), with jose. */
async function verifyAccessToken(token, audience) {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: ISSUER,
    audience,
    typ: 'at+jwt',
    algorithms: ['RS256', 'ES256'],
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti'],
  });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assert.ok(protectedHeader.kid, 'the header names its key');
  return payload;
}

/** The login form's fields, found by their labels as a screen reader would find them. */
function loginFields(page) {
  return {
    username: page.getByLabel('Username', { exact: true }),
    password: page.getByLabel('Password', { exact: true }),
  };
}

/** Types into the login form with the keyboard and submits it with Enter. */
async function typeCredentials(page, username, password) {
  const fields = loginFields(page);
  await fields.username.click();
  await page.keyboard.type(username);
  await page.keyboard.press('Tab'); // focus order: username, then password
  assert.equal(await fields.password.evaluate((el) => el === document.activeElement), true);
  await page.keyboard.type(password);
}

// --- tests -------------------------------------------------------------------------------------
// The failed sign-ins run last, so no login throttling they might set off can touch the
// others (each run starts a fresh server).

test('login page: sign in with the keyboard, land on the redirect with a code, redeem it, verify the token with jose', { timeout: TEST_TIMEOUT }, async () => {
  const { url, state, verifier } = demoRequest();
  const { context, page } = await newPage();
  try {
    const response = await page.goto(url);
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-type'], /^text\/html/);

    // The login page names the client and has labelled fields.
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByText(CLIENT_NAME, { exact: true }).waitFor();
    const { username, password } = loginFields(page);
    assert.equal(await username.getAttribute('type'), 'text');
    assert.equal(await password.getAttribute('type'), 'password');
    assert.equal(await username.getAttribute('autocomplete'), 'username');
    assert.equal(await password.getAttribute('autocomplete'), 'current-password');
    await screenshot(page, 'login');

    await typeCredentials(page, USERNAME, PASSWORD);
    const redirectPath = new URL(REDIRECT_URI).pathname;
    await Promise.all([
      page.waitForURL((u) => u.origin === new URL(REDIRECT_URI).origin && u.pathname === redirectPath),
      page.keyboard.press('Enter'),
    ]);

    // RFC 6749 §4.1.2 and RFC 9207: code, the same state, and the issuer.
    const landed = new URL(page.url());
    const code = landed.searchParams.get('code');
    assert.ok(code, `no code in ${landed}`);
    assert.equal(landed.searchParams.get('state'), state);
    assert.equal(landed.searchParams.get('iss'), ISSUER);
    assert.equal(landed.searchParams.get('error'), null);

    const tokens = await redeem(code, verifier);
    assert.ok(tokens.refresh_token, 'the code flow returns a refresh token');
    const claims = await verifyAccessToken(tokens.access_token, AUDIENCE);
    assert.equal(claims.aud, AUDIENCE);
    assert.equal(claims.sub, userId(USERNAME));
    assert.equal(claims.client_id, CLIENT_ID);
    assert.deepEqual(claims.scope.split(' '), ['read']);
    assert.ok(claims.exp > Date.now() / 1000);
  } finally {
    await context.close();
  }
});

/** The authorization URL of an unknown client whose redirect URI is our loopback server. */
function unknownClientRequest() {
  return authorizeUrl({
    response_type: 'code',
    client_id: 'no-such-client',
    redirect_uri: `${callback.base}/callback`,
    scope: 'read',
    state: 'st-unknown-client',
    code_challenge: pkce().challenge,
    code_challenge_method: 'S256',
  });
}

test('error page: an unknown client gets an error page with a request id that is in the log, never a redirect', { timeout: TEST_TIMEOUT }, async () => {
  const url = unknownClientRequest();
  const { context, page } = await newPage();
  try {
    const navigations = [];
    page.on('request', (r) => r.isNavigationRequest() && navigations.push(r.url()));
    const response = await page.goto(url);
    assert.equal(response.status(), 400);
    assert.equal(response.headers().location, undefined);
    assert.equal(response.request().redirectedFrom(), null);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.textContent(), /not registered/i);

    // The request id is shown, sent as X-Request-Id, and the same id is in the server's log.
    const text = await page.locator('main').innerText();
    const match = text.match(/request id:\s*([A-Za-z0-9_-]{6,})/i);
    assert.ok(match, `no request id on the error page:\n${text}`);
    const requestId = match[1];
    assert.equal(response.headers()['x-request-id'], requestId);
    await waitFor(() => readFileSync(SERVER_LOG, 'utf8').includes(requestId), 5_000,
      `request id ${requestId} not in the server log`);
    await screenshot(page, 'error');

    // Nothing went to the redirect URI: the browser stayed on the authorization endpoint.
    assert.equal(page.url(), url);
    assert.deepEqual(navigations, [url]);
    assert.equal(callback.hits.filter((h) => h.pathname === '/callback').length, 0);
  } finally {
    await context.close();
  }
});

/** Registers a third-party (not first-party) public client whose redirect URI is our
 * loopback server, with the CLI, on the running server's database. */
function registerThirdPartyClient(name) {
  const id = `third-party-${base64url(randomBytes(6))}`;
  const created = JSON.parse(tessera('client', 'create', '--id', id, '--name', name, '--public',
    '--grant-type', 'authorization_code', '--redirect-uri', `${callback.base}/callback`,
    '--scope', 'read', '--audience', THIRD_PARTY_AUDIENCE, '--format', 'json'));
  assert.equal(created.first_party, false, JSON.stringify(created));
  return id;
}

/** Opens a third-party client's authorization URL in a fresh browser, signs in as the demo
 * user, and waits for the consent page. */
async function reachConsent(clientId, clientName) {
  const { verifier, challenge } = pkce();
  const state = base64url(randomBytes(16));
  const redirectUri = `${callback.base}/callback`;
  const url = authorizeUrl({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'read',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  const { context, page } = await newPage();
  await page.goto(url);
  await page.getByText(clientName, { exact: true }).waitFor();
  await typeCredentials(page, USERNAME, PASSWORD);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: new RegExp(`Allow ${clientName} access`) }).waitFor();
  return { context, page, url, state, verifier, redirectUri };
}

/** Waits for the browser to land on the loopback callback and returns its query. */
async function landOnCallback(page, action) {
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(`${callback.base}/callback?`)),
    action(),
  ]);
  await page.getByRole('heading', { name: 'Back at the client' }).waitFor();
  return new URL(page.url()).searchParams;
}

test('consent: a third-party client asks first; Allow lands on the redirect with a code, and is remembered', { timeout: TEST_TIMEOUT }, async () => {
  const name = 'Acme Reports';
  const clientId = registerThirdPartyClient(name);
  const { context, page, url, state, verifier, redirectUri } = await reachConsent(clientId, name);
  try {
    // The page says who asks, for what in words (the configured description), and as whom.
    const main = await page.locator('main').innerText();
    assert.ok(main.includes(READ_SCOPE_DESCRIPTION), main);
    assert.ok(main.includes(USERNAME), main);
    const allow = page.getByRole('button', { name: 'Allow' });
    const deny = page.getByRole('button', { name: 'Deny' });
    await allow.waitFor();
    await deny.waitFor();
    await screenshot(page, 'consent');

    const query = await landOnCallback(page, () => allow.click());
    const code = query.get('code');
    assert.ok(code, `no code in ${page.url()}`);
    assert.equal(query.get('state'), state);
    assert.equal(query.get('iss'), ISSUER);
    const tokens = await redeem(code, verifier, { clientId, redirectUri });
    const claims = await verifyAccessToken(tokens.access_token, THIRD_PARTY_AUDIENCE);
    assert.equal(claims.client_id, clientId);
    assert.equal(claims.sub, userId(USERNAME));

    // Remembered: the same request again (same browser session) gets a code at once.
    const again = await landOnCallback(page, () => page.goto(url));
    assert.ok(again.get('code'), `no code in ${page.url()}`);
    assert.notEqual(again.get('code'), code);
  } finally {
    await context.close();
  }
});

test('consent: Deny lands on the redirect with error=access_denied, the state and no code', { timeout: TEST_TIMEOUT }, async () => {
  const name = 'Beta Dashboards';
  const clientId = registerThirdPartyClient(name);
  const { context, page, state } = await reachConsent(clientId, name);
  try {
    const query = await landOnCallback(page, () => page.getByRole('button', { name: 'Deny' }).click());
    assert.equal(query.get('error'), 'access_denied');
    assert.equal(query.get('state'), state);
    assert.equal(query.get('iss'), ISSUER);
    assert.equal(query.get('code'), null);
  } finally {
    await context.close();
  }
});

test('login error: a wrong password and an unknown user get the same error on the login page, and no redirect', { timeout: TEST_TIMEOUT }, async () => {
  async function failedSignIn(username, password, shot) {
    const { url } = demoRequest();
    const { context, page } = await newPage();
    try {
      const redirects = [];
      page.on('request', (r) => r.url().startsWith(REDIRECT_URI) && redirects.push(r.url()));
      await page.goto(url);
      await typeCredentials(page, username, password);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === 'POST'
          && r.url().startsWith(metadata.authorization_endpoint)),
        page.keyboard.press('Enter'),
      ]);
      await page.waitForLoadState('load');
      const alert = page.getByRole('alert');
      await alert.waitFor();
      const message = (await alert.textContent()).trim();

      // Still the login page, ready for another try; the password is not sent back.
      await page.getByRole('heading', { name: 'Sign in' }).waitFor();
      await page.getByText(CLIENT_NAME, { exact: true }).waitFor();
      assert.equal(await loginFields(page).password.inputValue(), '');
      assert.equal(new URL(page.url()).pathname, new URL(metadata.authorization_endpoint).pathname);
      assert.deepEqual(redirects, []);
      assert.equal(response.headers().location, undefined);
      if (shot) await screenshot(page, shot);
      return { message, status: response.status() };
    } finally {
      await context.close();
    }
  }

  const wrongPassword = await failedSignIn(USERNAME, `${PASSWORD}-wrong`, 'login-error');
  assert.match(wrongPassword.message, /invalid username or password/i);
  assert.ok(wrongPassword.status >= 400 && wrongPassword.status < 500, `status ${wrongPassword.status}`);
  const unknownUser = await failedSignIn(`nobody-${base64url(randomBytes(6))}`, `${PASSWORD}-wrong`);
  assert.deepEqual(unknownUser, wrongPassword, 'no user enumeration: same message and status');
});

/** Waits until `condition()` is true, checking every 50 ms, for at most `ms`. */
async function waitFor(condition, ms, message) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(message);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
