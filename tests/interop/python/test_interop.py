"""Interoperability check: third-party Python OAuth 2.0 clients against a running Tessera.

Run by ``tests/interop/python/run.sh``, which starts the server, registers the clients and
the user, and passes everything through the environment:

    TESSERA_URL                  issuer identifier (base URL)
    TESSERA_AUDIENCE             expected ``aud`` of issued access tokens
    TESSERA_CC_CLIENT_ID         confidential client allowed client_credentials
    TESSERA_CC_SECRET            ... and its secret
    TESSERA_PUBLIC_CLIENT_ID     public client allowed authorization_code (+ PKCE)
    TESSERA_REDIRECT_URI         ... and its registered redirect URI
    TESSERA_USERNAME             a user who can sign in on the login page
    TESSERA_PASSWORD             ... and the password
    TESSERA_USER_ID              optional: the user's id, expected as ``sub``
    TESSERA_USER_ROLES           optional: space-separated roles expected in ``roles``

The clients are used as an application would use them: authlib's ``OAuth2Session`` for the
grants, PyJWT's ``PyJWKClient`` + ``jwt.decode`` to validate tokens, ``requests`` to play the
browser on the login page. Nothing here knows Tessera's internals beyond the login form.
"""

from __future__ import annotations

import os
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

TIMEOUT = 10
ACCESS_TOKEN_REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "sub", "aud", "jti"]


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        pytest.fail(f"environment variable {name} is not set (run tests/interop/python/run.sh)")
    return value


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def issuer() -> str:
    return env("TESSERA_URL").rstrip("/")


@pytest.fixture(scope="session")
def audience() -> str:
    return env("TESSERA_AUDIENCE", "https://api.interop.test")


@pytest.fixture(scope="session")
def metadata(issuer: str) -> dict:
    response = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


@pytest.fixture(scope="session")
def jwks_client(metadata: dict) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(metadata["jwks_uri"], timeout=TIMEOUT)


@pytest.fixture(scope="session")
def cc_client() -> tuple[str, str]:
    return env("TESSERA_CC_CLIENT_ID"), env("TESSERA_CC_SECRET")


@pytest.fixture(scope="session")
def public_client() -> tuple[str, str]:
    return env("TESSERA_PUBLIC_CLIENT_ID"), env("TESSERA_REDIRECT_URI")


@pytest.fixture(scope="session")
def user() -> tuple[str, str]:
    return env("TESSERA_USERNAME"), env("TESSERA_PASSWORD")


# --- helpers ----------------------------------------------------------------------------------


def verify_access_token(
    token: str, jwks_client: jwt.PyJWKClient, issuer: str, audience: str
) -> dict:
    """Validates an access token as a resource server would (RFC 9068 §4) and returns its claims."""
    header = jwt.get_unverified_header(token)
    assert header.get("typ") == "at+jwt", header
    assert header.get("alg") == "RS256", header
    assert header.get("kid"), header
    signing_key = jwks_client.get_signing_key(header["kid"])
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"require": ACCESS_TOKEN_REQUIRED_CLAIMS},
    )
    now = time.time()
    assert claims["iat"] <= now + 5, claims
    assert claims["nbf"] <= now + 5, claims
    assert claims["exp"] > now, claims
    assert claims["exp"] > claims["iat"], claims
    assert isinstance(claims["jti"], str) and claims["jti"], claims
    return claims


def check_token_response(token: dict) -> None:
    """RFC 6749 §5.1 fields, as authlib hands them back."""
    assert token["access_token"], token
    assert token["token_type"].lower() == "bearer", token
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0, token


class FormParser(HTMLParser):
    """Collects the forms of a page: action, method and the named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            action, method = attrs.get("action", ""), attrs.get("method", "get")
            self.forms.append({"action": action, "method": method, "inputs": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["inputs"][attrs["name"]] = attrs.get("value") or ""


def sign_in_in_browser(browser: requests.Session, url: str, username: str, password: str) -> str:
    """Plays the user agent: opens the authorization URL, fills in the login form if one is
    shown, and returns the Location of the redirect back to the client."""
    page = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    if page.status_code in (302, 303):  # already signed in: the code comes at once
        return page.headers["Location"]
    assert page.status_code == 200, (page.status_code, page.text)
    assert page.headers["content-type"].startswith("text/html")
    parser = FormParser()
    parser.feed(page.text)
    assert len(parser.forms) == 1, page.text
    form = parser.forms[0]
    assert form["method"].lower() == "post"
    assert "csrf_token" in form["inputs"], form
    assert "username" in form["inputs"] and "password" in form["inputs"], form
    data = dict(form["inputs"])
    data["username"] = username
    data["password"] = password
    response = browser.post(
        urljoin(page.url, form["action"]), data=data, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code in (302, 303), (response.status_code, response.text)
    return response.headers["Location"]


def query_of(location: str) -> dict[str, str]:
    params = parse_qs(urlsplit(location).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in params.values()), params  # no repeated parameters
    return {k: v[0] for k, v in params.items()}


def public_session(public_client: tuple[str, str]) -> OAuth2Session:
    client_id, redirect_uri = public_client
    return OAuth2Session(
        client_id,
        redirect_uri=redirect_uri,
        scope="read",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )


def fresh_code(metadata, public_client, user) -> tuple[OAuth2Session, str, str, str]:
    """Runs a new authorization request in a new browser.

    Returns (session, verifier, state, code)."""
    session = public_session(public_client)
    verifier = generate_token(48)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier
    )
    location = sign_in_in_browser(requests.Session(), url, *user)
    params = query_of(location)
    assert "error" not in params, params
    assert params["state"] == state
    return session, verifier, state, params["code"]


def raw_token_request(metadata: dict, data: dict, auth=None) -> requests.Response:
    return requests.post(
        metadata["token_endpoint"], data=data, auth=auth, allow_redirects=False, timeout=TIMEOUT
    )


def assert_oauth_error(response: requests.Response, status: int | tuple, error: str) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.headers.get("cache-control") == "no-store", response.headers
    body = response.json()
    assert body["error"] == error, body
    return body


# --- a. discovery -----------------------------------------------------------------------------


def test_discovery_metadata(metadata: dict, issuer: str):
    assert metadata["issuer"] == issuer
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert metadata[endpoint].startswith(issuer + "/"), (endpoint, metadata[endpoint])
    assert "code" in metadata["response_types_supported"]
    assert {"authorization_code", "client_credentials"} <= set(metadata["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        metadata["token_endpoint_auth_methods_supported"]
    )


def test_discovery_metadata_validates_with_authlib(metadata: dict, monkeypatch):
    # authlib insists on https issuers; the interop server listens on plain loopback http.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    AuthorizationServerMetadata(metadata).validate()


def test_openid_configuration_is_the_same_document(metadata: dict, issuer: str):
    response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == metadata


def test_jwks_publishes_public_rs256_keys_only(metadata: dict):
    response = requests.get(metadata["jwks_uri"], timeout=TIMEOUT)
    assert response.status_code == 200
    jwk_set = jwt.PyJWKSet.from_dict(response.json())
    assert jwk_set.keys
    for key in response.json()["keys"]:
        assert key["kty"] == "RSA" and key.get("kid"), key
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material in JWKS"


# --- b. client credentials --------------------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials(auth_method, metadata, jwks_client, cc_client, issuer, audience):
    client_id, client_secret = cc_client
    session = OAuth2Session(client_id, client_secret, token_endpoint_auth_method=auth_method)
    sent: list[requests.PreparedRequest] = []
    session.hooks["response"].append(lambda r, *a, **k: sent.append(r.request))

    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")

    # The client really used the method under test.
    assert len(sent) == 1
    request = sent[0]
    if auth_method == "client_secret_basic":
        assert request.headers.get("Authorization", "").startswith("Basic ")
        assert "client_secret" not in (request.body or "")
    else:
        assert "Authorization" not in request.headers
        assert "client_secret=" in (request.body or "")

    check_token_response(token)
    assert "refresh_token" not in token  # RFC 6749 §4.4.3
    claims = verify_access_token(token["access_token"], jwks_client, issuer, audience)
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert set(claims["scope"].split()) == {"read", "write"}  # all registered, none asked
    # RFC 6749 §5.1: scope is REQUIRED in the response when it differs from the request.
    assert set(token["scope"].split()) == {"read", "write"}, token
    assert "roles" not in claims


def test_client_credentials_narrowed_scope(metadata, jwks_client, cc_client, issuer, audience):
    client_id, client_secret = cc_client
    session = OAuth2Session(
        client_id, client_secret, token_endpoint_auth_method="client_secret_basic", scope="read"
    )
    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    claims = verify_access_token(token["access_token"], jwks_client, issuer, audience)
    assert claims["scope"] == "read"
    if "scope" in token:
        assert token["scope"] == "read"


# --- c. authorization code + PKCE -------------------------------------------------------------


def test_authorization_code_with_pkce(metadata, jwks_client, public_client, user, issuer, audience):
    client_id, redirect_uri = public_client
    session = public_session(public_client)
    verifier = generate_token(48)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier
    )
    request_params = query_of(url)
    assert request_params["code_challenge_method"] == "S256"
    assert request_params["code_challenge"]

    location = sign_in_in_browser(requests.Session(), url, *user)

    # The redirect goes back to exactly the registered URI, with code, state and iss (RFC 9207).
    assert location.split("?", 1)[0] == redirect_uri, location
    params = query_of(location)
    assert "error" not in params, params
    assert params["iss"] == issuer
    assert params["state"] == state
    assert params["code"]

    token = session.fetch_token(
        metadata["token_endpoint"],
        authorization_response=location,
        state=state,
        code_verifier=verifier,
    )
    check_token_response(token)
    claims = verify_access_token(token["access_token"], jwks_client, issuer, audience)
    assert claims["client_id"] == client_id
    assert claims["sub"] and claims["sub"] not in (client_id, user[0])
    expected_sub = os.environ.get("TESSERA_USER_ID")
    if expected_sub:
        assert claims["sub"] == expected_sub
    assert claims["scope"] == "read"
    assert isinstance(claims["roles"], list), claims
    expected_roles = os.environ.get("TESSERA_USER_ROLES")
    if expected_roles:
        assert sorted(claims["roles"]) == sorted(expected_roles.split())
    if "auth_time" in claims:
        assert claims["auth_time"] <= claims["iat"]

    # RFC 6749 §4.1.2: the code is single use.
    replay = raw_token_request(
        metadata,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    assert_oauth_error(replay, 400, "invalid_grant")


def test_authorization_code_wrong_verifier_is_invalid_grant(metadata, public_client, user):
    session, _verifier, state, code = fresh_code(metadata, public_client, user)
    wrong = generate_token(48)
    with pytest.raises(OAuthError) as raised:
        session.fetch_token(
            metadata["token_endpoint"],
            code=code,
            grant_type="authorization_code",
            code_verifier=wrong,
        )
    assert raised.value.error == "invalid_grant"

    # The same over raw HTTP, to see the status and headers.
    client_id, redirect_uri = public_client
    response = raw_token_request(
        metadata,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": generate_token(48),
        },
    )
    assert_oauth_error(response, 400, "invalid_grant")


def test_authorization_error_redirect_carries_state_and_iss(metadata, public_client, issuer):
    client_id, redirect_uri = public_client
    session = OAuth2Session(
        client_id, redirect_uri=redirect_uri, scope="admin", code_challenge_method="S256"
    )
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=generate_token(48)
    )
    response = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code in (302, 303), (response.status_code, response.text)
    location = response.headers["Location"]
    assert location.split("?", 1)[0] == redirect_uri, location
    params = query_of(location)
    assert params["error"] == "invalid_scope", params
    assert params["state"] == state  # RFC 6749 §4.1.2.1
    assert params["iss"] == issuer  # RFC 9207 §2: error responses too
    assert "code" not in params


def test_signed_in_browser_gets_a_code_without_the_form(
    metadata, jwks_client, public_client, user, issuer, audience
):
    endpoint = metadata["authorization_endpoint"]
    browser = requests.Session()
    first = public_session(public_client)
    url, _ = first.create_authorization_url(endpoint, code_verifier=generate_token(48))
    sign_in_in_browser(browser, url, *user)

    second = public_session(public_client)
    verifier = generate_token(48)
    url, state = second.create_authorization_url(endpoint, code_verifier=verifier)
    response = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code in (302, 303), (response.status_code, response.text)
    location = response.headers["Location"]
    params = query_of(location)
    assert params["iss"] == issuer and params["state"] == state
    token = second.fetch_token(
        metadata["token_endpoint"],
        authorization_response=location,
        state=state,
        code_verifier=verifier,
    )
    verify_access_token(token["access_token"], jwks_client, issuer, audience)


# --- d. negative: client authentication -------------------------------------------------------


def test_wrong_secret_with_basic_is_401_with_challenge(metadata, cc_client):
    client_id, _ = cc_client
    response = raw_token_request(
        metadata, {"grant_type": "client_credentials"}, auth=(client_id, "wrong-" + "x" * 40)
    )
    assert_oauth_error(response, 401, "invalid_client")
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.lower().startswith("basic"), response.headers


def test_wrong_secret_with_authlib_raises_invalid_client(metadata, cc_client):
    client_id, _ = cc_client
    for method in ("client_secret_basic", "client_secret_post"):
        session = OAuth2Session(client_id, "wrong-" + "x" * 40, token_endpoint_auth_method=method)
        with pytest.raises(OAuthError) as raised:
            session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        assert raised.value.error == "invalid_client", method


def test_wrong_secret_in_body_is_invalid_client(metadata, cc_client):
    client_id, _ = cc_client
    response = raw_token_request(
        metadata,
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": "wrong-" + "x" * 40,
        },
    )
    # RFC 6749 §5.2: 400, or 401 (a challenge is only required after HTTP Basic).
    assert_oauth_error(response, (400, 401), "invalid_client")


def test_unknown_client_with_basic_is_401_with_challenge(metadata):
    response = raw_token_request(
        metadata, {"grant_type": "client_credentials"}, auth=("no-such-client", "x" * 40)
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("basic")


# --- e. refresh rotation and revocation -------------------------------------------------------


def redeem_with_authlib(metadata, public_client, user) -> tuple[OAuth2Session, dict]:
    session, verifier, _state, code = fresh_code(metadata, public_client, user)
    token = session.fetch_token(
        metadata["token_endpoint"],
        code=code,
        grant_type="authorization_code",
        code_verifier=verifier,
    )
    check_token_response(token)
    return session, token


def raw_refresh(metadata, public_client, refresh_token: str) -> requests.Response:
    return raw_token_request(
        metadata,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": public_client[0],
        },
    )


def test_refresh_rotation_with_authlib(metadata, jwks_client, public_client, user, issuer, audience):
    session, token = redeem_with_authlib(metadata, public_client, user)
    first = token["refresh_token"]
    assert first.startswith("tsr_"), first

    renewed = session.refresh_token(metadata["token_endpoint"], refresh_token=first)
    check_token_response(renewed)
    second = renewed["refresh_token"]
    assert second != first, "every refresh returns a new refresh token"
    claims = verify_access_token(renewed["access_token"], jwks_client, issuer, audience)
    assert claims["client_id"] == public_client[0]
    assert claims["scope"] == "read"

    third = session.refresh_token(metadata["token_endpoint"], refresh_token=second)
    assert third["refresh_token"] not in (first, second)

    # Presenting a rotated token is reuse: refused, and the whole family dies with it.
    assert_oauth_error(raw_refresh(metadata, public_client, first), 400, "invalid_grant")
    assert_oauth_error(
        raw_refresh(metadata, public_client, third["refresh_token"]), 400, "invalid_grant"
    )


def test_revocation_with_authlib(metadata, public_client, user):
    assert metadata["revocation_endpoint"].endswith("/api/v2/auth/revoke")
    session, token = redeem_with_authlib(metadata, public_client, user)
    response = session.revoke_token(
        metadata["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert response.status_code == 200, response.text
    assert response.text == ""
    assert_oauth_error(
        raw_refresh(metadata, public_client, token["refresh_token"]), 400, "invalid_grant"
    )
    # Unknown tokens are answered the same way (RFC 7009 §2.2).
    response = session.revoke_token(metadata["revocation_endpoint"], token="tsr_unknown")
    assert response.status_code == 200, response.text


# --- f. key rotation, seen by a verifier that is not restarted --------------------------------


def test_pyjwkclient_keeps_verifying_across_a_key_rotation(metadata, cc_client, issuer, audience):
    import re
    import subprocess

    client_id, secret = cc_client
    # A verifier that caches the JWKS for as long as the server says (Cache-Control max-age),
    # as PyJWKClient's `lifespan` allows; its forced-refresh cooldown (30 s) stays at the
    # default, so it cannot cheat by refetching on every unknown kid.
    cache_control = requests.get(metadata["jwks_uri"], timeout=TIMEOUT).headers["cache-control"]
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
    jwks_client = jwt.PyJWKClient(metadata["jwks_uri"], lifespan=max_age, timeout=TIMEOUT)

    def fresh_token() -> str:
        response = requests.post(
            metadata["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    before = fresh_token()
    verify_access_token(before, jwks_client, issuer, audience)
    old_kid = jwt.get_unverified_header(before)["kid"]

    # The operator starts a rotation; the server publishes the new key first (2 s ahead here).
    subprocess.run(
        [env("TESSERA_BIN"), "keys", "--data-dir", env("TESSERA_DATA_DIR"), "rotate"],
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 20
    while True:
        after = fresh_token()
        if jwt.get_unverified_header(after)["kid"] != old_kid:
            break
        assert time.monotonic() < deadline, "the new key never started signing"
        time.sleep(0.2)

    # The same PyJWKClient, never restarted: the new kid was published 2 s before it signed,
    # longer than the client caches the JWKS, so the client already knows it; the retired
    # key still verifies the older token.
    verify_access_token(after, jwks_client, issuer, audience)
    verify_access_token(before, jwks_client, issuer, audience)
