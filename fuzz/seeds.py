#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/: realistic requests in each target's
input format (see the doc comment at the top of each fuzz_targets/*.rs), tokens signed by
the fixed test keys (fuzz/keys/), and JWK Sets as Tessera and the test issuer publish them.

    python3 fuzz/seeds.py        # needs the `cryptography` package

Files are named by a hash of their content, so re-running adds nothing twice (ES256
signatures are randomised: each run adds new ES256 tokens; delete the old ones if it
matters). The constants mirror fuzz/src/server.rs and fuzz/src/keys.rs.
"""

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = Path(__file__).resolve().parent
SECRET = "tss_fuzz-secret-that-is-long-enough-0123456789"
VERIFIER = "fuzz-verifier-0123456789abcdefghijklmnopqrstuvwxyz"
ISSUER = "https://issuer.fuzz.test"
AUDIENCE = "https://api.fuzz.test"
RSA_KID = "fuzz-rsa-1"
EC_KID = "fuzz-p256-1"

RSA = serialization.load_der_private_key((HERE / "keys/test-rsa.pk8.der").read_bytes(), None)
EC = serialization.load_der_private_key((HERE / "keys/test-p256.pk8.der").read_bytes(), None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def write(target: str, data: bytes) -> None:
    directory = HERE / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ("seed-" + hashlib.sha256(data).hexdigest()[:16])).write_bytes(data)


def seed(target: str, flags: int, *parts) -> None:
    write(target, bytes([flags]) + b"".join(p.encode() if isinstance(p, str) else p for p in parts))


def sign(alg: str, header: bytes, payload: bytes) -> str:
    signing_input = f"{b64url(header)}.{b64url(payload)}".encode()
    if alg == "RS256":
        signature = RSA.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(EC.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64url(signature)}"


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def access_token(alg: str, claims: dict) -> str:
    kid = RSA_KID if alg == "RS256" else EC_KID
    return sign(alg, compact({"alg": alg, "typ": "at+jwt", "kid": kid}), compact(claims))


def valid_claims() -> dict:
    return {
        "iss": ISSUER, "sub": "usr_alice", "aud": AUDIENCE, "exp": 4102444800,
        "iat": 1767225600, "nbf": 1767225600, "jti": "fuzz-jti-1", "client_id": "web",
        "scope": "read write", "roles": ["admin"],
    }


def jwks() -> dict:
    rsa = RSA.public_key().public_numbers()
    point = EC.public_key().public_numbers()
    return {"keys": [
        {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": RSA_KID,
         "n": b64url(uint(rsa.n)), "e": b64url(uint(rsa.e))},
        {"kty": "EC", "use": "sig", "alg": "ES256", "kid": EC_KID, "crv": "P-256",
         "x": b64url(point.x.to_bytes(32, "big")), "y": b64url(point.y.to_bytes(32, "big"))},
    ]}


def tessera_jwks() -> dict:
    """The test RSA key as `tessera serve` publishes its keys: RFC 7638 thumbprint as kid."""
    rsa = RSA.public_key().public_numbers()
    n, e = b64url(uint(rsa.n)), b64url(uint(rsa.e))
    canonical = f'{{"e":"{e}","kty":"RSA","n":"{n}"}}'.encode()
    kid = b64url(hashlib.sha256(canonical).digest())
    return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}]}


def main() -> None:
    loopback = "http%3A%2F%2F127.0.0.1%3A8765%2Fcallback"
    https = "https%3A%2F%2Fapp.fuzz.test%2Fcb%3Fx%3D1"
    challenge = b64url(hashlib.sha256(VERIFIER.encode()).digest())
    basic = lambda client: base64.b64encode(f"{client}:{SECRET}".encode()).decode()

    # token: flags (content type bits 0-1, Authorization bits 2-3, GET bit 4), [line\n], body.
    cc = f"grant_type=client_credentials&client_id=svc&client_secret={SECRET}"
    seed("token", 0x00, cc)
    seed("token", 0x01, cc + "&scope=read")
    seed("token", 0x04, f"svc:{SECRET}\n",
         "grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fother.fuzz.test")
    seed("token", 0x08, f"Basic {basic('svc')}\n", "grant_type=client_credentials")
    seed("token", 0x03, "Application/X-WWW-Form-Urlencoded ; charset=utf-8\n", cc)
    seed("token", 0x10, cc)
    seed("token", 0x00, f"grant_type=authorization_code&client_id=spa&code=@CODE@"
         f"&redirect_uri={loopback}&code_verifier={VERIFIER}")
    seed("token", 0x04, f"web:{SECRET}\n", f"grant_type=authorization_code&code=@WEBCODE@"
         f"&redirect_uri={https}&code_verifier={VERIFIER}")
    seed("token", 0x00, f"grant_type=authorization_code&client_id=web&client_secret={SECRET}"
         f"&code=@WEBCODE@&redirect_uri={https}&code_verifier={VERIFIER}")
    seed("token", 0x00, "grant_type=refresh_token&client_id=spa&refresh_token=@RT@")
    seed("token", 0x00, "grant_type=refresh_token&client_id=spa&refresh_token=@RT@&scope=read"
         "&resource=https%3A%2F%2Fapi.fuzz.test")
    seed("token", 0x00, f"grant_type=authorization_code&client_id=spa&code=@CODE@"
         f"&redirect_uri={loopback}&code_verifier=wrong-verifier-0123456789abcdefghijklmnopqrstu")
    seed("token", 0x00, "grant_type=password&username=alice&password=x&client_id=spa")
    seed("token", 0x00, "grant_type=client_credentials&grant_type=refresh_token&client_id=svc")
    seed("token", 0x00, "grant_type=client_credentials&client_id=%FF%FE")

    # authorize: flags (bit 0 alice's session, bit 1 an unknown session), query.
    spa = (f"response_type=code&client_id=spa&redirect_uri={loopback}&scope=read+write"
           f"&state=af0ifjsldkj&code_challenge={challenge}&code_challenge_method=S256")
    for flags in (0x00, 0x01, 0x02):
        seed("authorize", flags, spa)
    seed("authorize", 0x01, f"response_type=code&client_id=web&redirect_uri={https}&scope=read"
         f"&state=s&code_challenge={challenge}&code_challenge_method=S256"
         "&resource=https%3A%2F%2Fapi.fuzz.test")
    seed("authorize", 0x01, "response_type=code&client_id=partner"
         "&redirect_uri=com.example.app%3A%2Foauth&scope=read"
         f"&code_challenge={challenge}&code_challenge_method=S256")
    seed("authorize", 0x01, "response_type=code&client_id=spa"
         "&redirect_uri=http%3A%2F%2F127.0.0.1%3A51004%2Fcallback"
         f"&code_challenge={challenge}&code_challenge_method=S256")
    seed("authorize", 0x00, "response_type=code&client_id=spa&state=%3Cx-fuzz%3E%22+x-fuzz%3D%221"
         f"&code_challenge={challenge}&code_challenge_method=S256")
    seed("authorize", 0x00, f"response_type=token&client_id=spa&redirect_uri={loopback}&state=x")
    seed("authorize", 0x00, f"response_type=code&client_id=spa&redirect_uri={loopback}"
         "&code_challenge=abc&code_challenge_method=plain")
    seed("authorize", 0x00, "response_type=code&client_id=web"
         "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb")
    # OpenID Connect: nonce, prompt, max_age, login_hint, signed in and out.
    oidc = (f"response_type=code&client_id=spa&redirect_uri={loopback}&scope=openid+profile+email"
            f"&state=s&code_challenge={challenge}&code_challenge_method=S256&nonce=n-0S6_WzA2Mj")
    for flags in (0x00, 0x01):
        seed("authorize", flags, oidc + "&prompt=none&max_age=60&login_hint=alice")
    seed("authorize", 0x01, oidc + "&prompt=login+consent")
    seed("authorize", 0x01, oidc.replace("&nonce=n-0S6_WzA2Mj", "") + "&max_age=0")
    seed("authorize", 0x01, "response_type=code&client_id=partner&redirect_uri=com.example.app"
         "%3A%2Foauth&scope=openid&nonce=n&prompt=none"
         f"&code_challenge={challenge}&code_challenge_method=S256")

    # introspect: flags (content type bits 0-1; Authorization bits 2-3: none, svc, Basic of
    # the line, the line), [line\n], body.
    seed("introspect", 0x04, "token=@AT@")
    seed("introspect", 0x04, "token=@UAT@&token_type_hint=access_token")
    seed("introspect", 0x04, "token=@RT@&token_type_hint=refresh_token")
    seed("introspect", 0x00, f"token=@AT@&client_id=svc&client_secret={SECRET}")
    seed("introspect", 0x00, f"token=@RT@&client_id=web&client_secret={SECRET}")
    seed("introspect", 0x08, f"web:{SECRET}\n", "token=@UAT@")
    seed("introspect", 0x0C, f"Basic {basic('web')}\n", "token=@RT@")
    seed("introspect", 0x00, "token=@AT@&client_id=spa")
    seed("introspect", 0x04, "token=" + access_token("RS256", valid_claims()))

    # guard_jwt: flags (mode bits 0-1, header mode bit 2), then by mode.
    claims = valid_claims()
    for alg in ("RS256", "ES256"):
        token = access_token(alg, claims)
        seed("guard_jwt", 0x00, token)
        seed("guard_jwt", 0x04, "Bearer " + token)
    seed("guard_jwt", 0x00, access_token("ES256", {**claims, "exp": 1700000000}))
    header = lambda alg, kid: compact({"alg": alg, "typ": "at+jwt", "kid": kid})
    seed("guard_jwt", 0x01, header("RS256", RSA_KID), b"\n", compact(claims))
    seed("guard_jwt", 0x02, header("ES256", EC_KID), b"\n", compact(claims))
    seed("guard_jwt", 0x03, compact(claims))
    seed("guard_jwt", 0x03, compact({**claims, "aud": ["https://other.fuzz.test", AUDIENCE]}))
    seed("guard_jwt", 0x02, compact({"alg": "ES256", "typ": "JWT", "kid": EC_KID, "crit": ["exp"]}),
         b"\n", compact(claims))
    # Unsigned and HMAC tokens (RFC 8725 §2.1, §3.1).
    seed("guard_jwt", 0x00, f"{b64url(compact({'alg': 'none', 'typ': 'at+jwt'}))}."
         f"{b64url(compact(claims))}.")
    seed("guard_jwt", 0x00, f"{b64url(compact({'alg': 'HS256', 'typ': 'at+jwt', 'kid': RSA_KID}))}."
         f"{b64url(compact(claims))}.c2lnbmF0dXJl")

    # jwks: the document itself, no flag byte.
    write("jwks", compact(jwks()))
    write("jwks", json.dumps(tessera_jwks(), indent=2).encode())
    variants = jwks()
    variants["keys"][0]["use"] = "enc"
    del variants["keys"][1]["alg"]
    write("jwks", compact(variants))
    write("jwks", compact({"keys": [
        {"kty": "oct", "alg": "HS256", "kid": "h", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "p384", "x": "AQAB", "y": "AQAB"},
        {"kty": "RSA", "alg": "PS256", "kid": "ps", "n": "AQAB", "e": "AQAB"},
    ]}))
    print(f"seeds written under {HERE / 'corpus'}")


if __name__ == "__main__":
    main()
