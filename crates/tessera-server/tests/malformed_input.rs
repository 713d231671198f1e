//! Throws a corpus of malformed requests at every endpoint over a real socket. Each must be
//! refused with a 4xx in the endpoint's error format (JSON `error` for the API, an HTML page
//! for the browser-facing authorize endpoint), never a 5xx, a hang or a redirect; JWKS and
//! discovery ignore junk query strings. Afterwards the server must still serve.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{REDIRECT, SECRET, TestServer};
use tessera_server::paths::INTROSPECT as I;
use tessera_server::paths::REVOKE as R;
use tessera_server::paths::TOKEN as T;
use tessera_server::paths::{AUTHORIZE as A, JWKS, METADATA, OPENID_CONFIGURATION as OIDC};

const TIMEOUT: Duration = Duration::from_secs(20);
const FORM: &str = "application/x-www-form-urlencoded";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// What a case must get back.
#[derive(Clone, Copy, Default, PartialEq)]
enum Expect {
    /// 4xx with a JSON body carrying a string `error`.
    #[default]
    Json,
    /// 4xx with an HTML page (the authorize endpoint).
    Html,
    /// 200 with a JSON body (JWKS and discovery ignore junk).
    Ok,
    /// 4xx from the HTTP layer itself, before any route (unparseable requests).
    Protocol,
}

#[derive(Default)]
struct Case {
    name: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    expect: Expect,
    /// The exact status, when it matters.
    status: Option<u16>,
    /// A complete request sent verbatim over a plain socket, for bytes no client will send.
    raw: Option<Vec<u8>>,
    /// Shut the raw socket's write side after the request. Hyper drops a connection at EOF,
    /// so only for a request that must end early.
    half_close: bool,
}

fn req(name: &'static str, method: &'static str, target: impl Into<String>, e: Expect) -> Case {
    let target = target.into();
    Case {
        name,
        method,
        target,
        expect: e,
        ..Case::default()
    }
}

/// `POST path` with a form content type and `body`.
fn form(name: &'static str, path: &str, body: impl AsRef<[u8]>, expect: Expect) -> Case {
    req(name, "POST", path, expect)
        .header("content-type", FORM)
        .body(body)
}

impl Case {
    fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }
    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }
    fn half_close(mut self) -> Self {
        self.half_close = true;
        self
    }
    /// The exact status expected; 0 means any 4xx.
    fn status(mut self, status: u16) -> Self {
        self.status = (status != 0).then_some(status);
        self
    }
}

struct Reply {
    status: u16,
    content_type: String,
    location: Option<String>,
    body: Vec<u8>,
}

async fn send(http: &reqwest::Client, base: &str, case: &Case) -> Result<Reply, String> {
    let name = case.name;
    if let Some(request) = &case.raw {
        let addr = base.trim_start_matches("http://").to_owned();
        let (request, half_close) = (request.clone(), case.half_close);
        return tokio::task::spawn_blocking(move || raw_exchange(&addr, &request, half_close))
            .await
            .unwrap()
            .map_err(|e| format!("{name}: no HTTP answer over the raw socket: {e}"));
    }
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut builder = http.request(method, format!("{base}{}", case.target));
    for (k, v) in &case.headers {
        builder = builder.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
    }
    let response = builder.body(case.body.clone()).send().await;
    let response = response.map_err(|e| format!("{name}: request failed (hang? reset?): {e:?}"))?;
    let header = |n| {
        let value = response.headers().get(n);
        value.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (content_type, location) = (
        header("content-type").unwrap_or_default(),
        header("location"),
    );
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{name}: body: {e}"))?
        .to_vec();
    Ok(Reply {
        status,
        content_type,
        location,
        body,
    })
}

/// Writes `request`, reads until the server closes, and parses the answer.
fn raw_exchange(addr: &str, request: &[u8], half_close: bool) -> std::io::Result<Reply> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(request)?;
    if half_close {
        stream.shutdown(std::net::Shutdown::Write)?;
    }
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let no_head = || std::io::Error::other(format!("no response head in {text:?}"));
    let (head, _) = text.split_once("\r\n\r\n").ok_or_else(no_head)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .unwrap_or(0);
    let headers: Vec<_> = lines.filter_map(|l| l.split_once(':')).collect();
    let header = |n: &str| {
        let found = headers
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(n));
        found.map(|(_, v)| v.trim().to_owned())
    };
    let (content_type, location) = (
        header("content-type").unwrap_or_default(),
        header("location"),
    );
    let body = buf[head.len() + 4..].to_vec();
    Ok(Reply {
        status,
        content_type,
        location,
        body,
    })
}

fn check(case: &Case, reply: &Reply) {
    let (name, status, content_type) = (case.name, reply.status, &reply.content_type);
    let shown: String = String::from_utf8_lossy(&reply.body)
        .chars()
        .take(300)
        .collect();
    let got = format!("{name}: got {status}, content-type {content_type:?}, body {shown:?}");
    if let Some(expected) = case.status {
        assert_eq!(status, expected, "{got}");
    }
    if case.expect == Expect::Ok {
        assert_eq!(status, 200, "{got}");
    } else {
        assert!((400..500).contains(&status), "expected a 4xx: {got}");
        assert_eq!(reply.location, None, "{got}: must not redirect");
    }
    match case.expect {
        Expect::Json | Expect::Ok => {
            assert!(content_type.starts_with("application/json"), "{got}");
            let json: serde_json::Value = serde_json::from_slice(&reply.body)
                .unwrap_or_else(|e| panic!("{got}: not JSON: {e}"));
            let ok = match case.expect {
                Expect::Json => json["error"].is_string(),
                _ => json.is_object(),
            };
            assert!(ok, "{got}: wrong JSON shape");
        }
        Expect::Html => assert!(content_type.starts_with("text/html"), "{got}"),
        Expect::Protocol => {}
    }
}

// Row helpers; a `status` of 0 means "any 4xx".
fn tok(name: &'static str, body: impl AsRef<[u8]>, status: u16) -> Case {
    form(name, T, body, Expect::Json).status(status)
}
fn tok_auth(name: &'static str, authorization: impl AsRef<[u8]>) -> Case {
    tok(name, "grant_type=client_credentials", 401).header("authorization", authorization)
}
fn page(name: &'static str, query: impl AsRef<str>, status: u16) -> Case {
    req(name, "GET", format!("{A}?{}", query.as_ref()), Expect::Html).status(status)
}
fn json(name: &'static str, method: &'static str, path: impl Into<String>, status: u16) -> Case {
    req(name, method, path, Expect::Json).status(status)
}
fn ok(name: &'static str, path: impl Into<String>) -> Case {
    req(name, "GET", path, Expect::Ok)
}
/// A raw HTTP/1.1 request: `start` is the method and target, `headers` extra header lines.
fn raw(name: &'static str, start: &[u8], headers: &str, body: &str, expect: Expect) -> Case {
    let head = format!(" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n");
    let mut c = req(name, "RAW", "", expect);
    c.raw = Some([start, head.as_bytes(), body.as_bytes()].concat());
    c
}

/// The corpus: one row per case. Kept as a table, hence unformatted.
#[rustfmt::skip]
fn corpus() -> Vec<Case> {
    use Expect::{Html, Json, Protocol};
    let cc = format!("grant_type=client_credentials&client_id=svc&client_secret={SECRET}");
    let basic = |s: &[u8]| format!("Basic {}", STANDARD.encode(s));
    let big = "a".repeat(100 * 1024);
    let many = "a=1&".repeat(5000);
    let long = "x".repeat(5000);
    let redirect = urlencode(REDIRECT);
    let authz = format!("response_type=code&client_id=web&redirect_uri={redirect}\
                         &code_challenge={CHALLENGE}&code_challenge_method=S256");
    let evil = format!("client_id=web&response_type=code&redirect_uri={}",
                       urlencode("https://evil.example/"));
    let js = "client_id=spa&response_type=code&redirect_uri=javascript:alert(document.cookie)";
    // The login form with a valid CSRF binding: the cookie and the token derived from it.
    let csrf = format!("csrf_token={}", tessera_server::cookies::csrf_token("binding"));
    let login = |name, extra: &str, status| {
        form(name, A, format!("{csrf}&{extra}"), Html)
            .header("cookie", "tessera_csrf=binding")
            .status(status)
    };
    let post = |name, body: &str, status| form(name, A, body, Html).status(status);
    let form_type = |c: Case| c.header("content-type", FORM);
    let multipart = "--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--X--\r\n";
    let (tok_post, tok_get) = (format!("POST {T}"), format!("GET {A}?client_id="));
    let chunked = format!("Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n");
    vec![
        // ---- token endpoint: content type and body size
        tok("token: empty body", "", 400),
        json("token: no content-type", "POST", T, 400).body(&cc),
        json("token: application/json", "POST", T, 400)
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"client_credentials","client_id":"svc"}"#),
        json("token: text/plain", "POST", T, 400).header("content-type", "text/plain").body(&cc),
        json("token: multipart", "POST", T, 400)
            .header("content-type", "multipart/form-data; boundary=X")
            .body(multipart),
        json("token: non-UTF-8 content-type", "POST", T, 400)
            .header("content-type", b"application/x-www-form-urlencoded\xff")
            .body(&cc),
        tok("token: JSON body, form type", r#"{"grant_type":"client_credentials"}"#, 400),
        tok("token: 100 KiB value", format!("{cc}&pad={big}"), 413),
        tok("token: body 1 byte over 64 KiB", "a".repeat(64 * 1024 + 1), 413),
        // ---- token endpoint: parameter encoding
        tok("token: raw invalid UTF-8 value", b"grant_type=client_credentials&c=\xff\xfe", 400),
        tok("token: raw invalid UTF-8 name", b"\xc3\x28=1&grant_type=client_credentials", 400),
        tok("token: %FF in value", "grant_type=client_credentials&client_id=%FF", 400),
        tok("token: %C3%28 in value", "grant_type=client_%C3%28credentials", 400),
        tok("token: %00 in grant_type", cc.replace("s&", "s%00&"), 400),
        tok("token: %00 in client_id", cc.replace("svc", "svc%00"), 401),
        tok("token: stray percent signs", "grant_type=client%_credentials%&client_id=%", 0),
        tok("token: separators only", "&&&=&==&", 400),
        tok("token: grant_type twice", format!("{cc}&grant_type=client_credentials"), 400),
        tok("token: client_id twice", format!("{cc}&client_id=svc"), 400),
        tok("token: client_secret twice", format!("{cc}&client_secret=x"), 400),
        tok("token: code twice", "grant_type=authorization_code&client_id=spa&code=a&code=b", 400),
        tok("token: 5000-char value", format!("{cc}&scope={long}"), 400),
        tok("token: 100-char name", format!("{}=1&{cc}", "n".repeat(100)), 400),
        tok("token: 5000 parameters", format!("{many}{cc}"), 400),
        tok("token: unknown grant_type", cc.replace("client_credentials", "password"), 400),
        tok("token: grant_type with no value", "grant_type=&client_id=svc", 400),
        tok("token: grant_type without '='", "grant_type&client_id=svc", 400),
        tok("token: bogus code",
            "grant_type=authorization_code&client_id=spa&code=z&code_verifier=z", 400),
        tok("token: scope with control chars", format!("{cc}&scope=%01%02%0A"), 400),
        tok("token: javascript: resource", format!("{cc}&resource=javascript:alert(1)"), 400),
        tok("token: unicode client_id", cc.replace("=svc", "=%C3%BCn%C3%AF"), 401),
        tok("token: raw UTF-8 client_id", cc.replace("=svc", "=ünï"), 401),
        form("token: credentials only in the query", &format!("{T}?{cc}"), "", Json).status(400),
        // ---- token endpoint: Authorization header
        tok_auth("token: Basic not base64", "Basic !!!not-base64!!!"),
        tok_auth("token: Basic without colon", basic(b"svc")),
        tok_auth("token: Basic decoding to non-UTF-8", basic(b"\xff\xfe:\xc3\x28")),
        tok_auth("token: Basic with %FF in the id", basic(b"%FF:secret")),
        tok_auth("token: 'Basic' with nothing", "Basic"),
        tok_auth("token: 'Basic' and spaces", "Basic    "),
        tok_auth("token: non-UTF-8 Authorization header", b"Basic \xff\xfe"),
        tok_auth("token: unicode id in Basic", basic("ünï:x".as_bytes())),
        tok_auth("token: Bearer header", "Bearer eyJhbGciOiJub25lIn0.e30."),
        tok("token: Basic and client_secret", &cc, 400)
            .header("authorization", basic(format!("svc:{SECRET}").as_bytes())),
        // ---- token endpoint: wrong methods and near-miss paths
        json("token: GET", "GET", format!("{T}?{cc}"), 405),
        form_type(json("token: PUT", "PUT", T, 405)).body(&cc),
        json("token: DELETE", "DELETE", T, 405),
        json("token: PATCH", "PATCH", T, 405),
        json("token: OPTIONS", "OPTIONS", T, 405),
        form("token: trailing slash", &format!("{T}/"), &cc, Json).status(404),
        form("token: %00 in path", &format!("{T}%00"), &cc, Json).status(404),
        // ---- revocation endpoint (RFC 7009): same strict form reading and client auth
        form("revoke: empty body", R, "", Json).status(401),
        form("revoke: no token", R, format!("client_id=svc&client_secret={SECRET}"), Json).status(400),
        form("revoke: repeated token", R, format!("token=a&token=b&client_id=svc&client_secret={SECRET}"), Json).status(400),
        form("revoke: invalid UTF-8", R, b"token=%FF&client_id=svc", Json).status(400),
        form("revoke: oversized body", R, format!("token={big}"), Json).status(413),
        json("revoke: wrong content-type", "POST", R, 400).body(&cc),
        form("revoke: Basic not base64", R, "token=x", Json).status(401)
            .header("authorization", "Basic !!!"),
        json("revoke: GET", "GET", R, 405),
        // ---- introspection endpoint (RFC 7662): same strict form reading and client auth
        form("introspect: empty body", I, "", Json).status(401),
        form("introspect: no token", I, format!("client_id=svc&client_secret={SECRET}"), Json).status(400),
        form("introspect: repeated token", I, format!("token=a&token=b&client_id=svc&client_secret={SECRET}"), Json).status(400),
        form("introspect: invalid UTF-8", I, b"token=%FF&client_id=svc", Json).status(400),
        form("introspect: oversized body", I, format!("token={big}"), Json).status(413),
        json("introspect: wrong content-type", "POST", I, 400).body(&cc),
        form("introspect: public client", I, "token=x&client_id=spa", Json).status(401),
        json("introspect: GET", "GET", I, 405),
        // ---- revocation feed: Basic auth, numeric cursor
        json("feed: no auth", "GET", "/api/v2/auth/revocations", 401),
        json("feed: bad cursor", "GET", "/api/v2/auth/revocations?after=%FF", 401),
        json("feed: huge wait", "GET", "/api/v2/auth/revocations?wait=99999999999999999999", 401),
        json("feed: POST", "POST", "/api/v2/auth/revocations", 405),
        json("feed: bad cursor, authenticated", "GET", "/api/v2/auth/revocations?after=abc", 400)
            .header("authorization", basic(format!("svc:{SECRET}").as_bytes())),
        json("feed: invalid UTF-8 query, authenticated", "GET", "/api/v2/auth/revocations?after=%FF", 400)
            .header("authorization", basic(format!("svc:{SECRET}").as_bytes())),
        // ---- authorize GET: an HTML page, never a redirect to an unverified URI
        req("authorize GET: no query", "GET", A, Html).status(400),
        page("authorize GET: empty query", "", 400),
        page("authorize GET: repeated client_id", format!("{authz}&client_id=web"), 400),
        page("authorize GET: repeated redirect_uri", format!("{authz}&redirect_uri=x"), 400),
        page("authorize GET: %FF in query", "client_id=%FF", 400),
        page("authorize GET: %C3%28 in query", format!("{authz}&state=%C3%28"), 400),
        page("authorize GET: %00 in client_id", "client_id=web%00", 400),
        page("authorize GET: unknown client", authz.replace("=web", "=nobody"), 400),
        page("authorize GET: unicode client_id", "client_id=%C3%BCn%C3%AF", 400),
        page("authorize GET: 5000-char client_id", format!("client_id={long}"), 400),
        page("authorize GET: 5000 parameters", format!("{many}{authz}"), 400),
        page("authorize GET: ~60 KB query", format!("{authz}&state={}", "s".repeat(60_000)), 400),
        page("authorize GET: client with no redirect URI", "client_id=svc&response_type=code", 400),
        page("authorize GET: unregistered redirect_uri", &evil, 400),
        page("authorize GET: redirect_uri prefix", authz.replace("callback", "callback%2F.."), 400),
        page("authorize GET: javascript: redirect_uri", js, 400),
        json("authorize: PUT", "PUT", A, 405),
        json("authorize: DELETE", "DELETE", format!("{A}?{authz}"), 405),
        // ---- authorize POST: the login form
        post("authorize POST: no CSRF cookie", &format!("{authz}&username=alice&password=x"), 403),
        post("authorize POST: cookie, no token", &authz, 403).header("cookie", "tessera_csrf=b"),
        post("authorize POST: wrong token", &format!("{authz}&csrf_token=nope"), 403)
            .header("cookie", "tessera_csrf=binding"),
        login("authorize POST: token twice", &format!("{csrf}&{authz}"), 403),
        post("authorize POST: %FF in form", &format!("{authz}&username=%FF"), 400),
        form("authorize POST: raw invalid UTF-8", A, b"username=\xff&password=\xc3\x28", Html),
        req("authorize POST: no content-type", "POST", A, Html).body(&authz).status(400),
        req("authorize POST: application/json", "POST", A, Html)
            .header("content-type", "application/json")
            .body(r#"{"username":"alice"}"#)
            .status(400),
        post("authorize POST: oversized body", &format!("{authz}&pad={big}"), 413),
        post("authorize POST: 5000 parameters", &format!("{many}{authz}"), 400),
        login("authorize POST: repeated client_id", &format!("{authz}&client_id=spa"), 400),
        login("authorize POST: unknown client", &authz.replace("=web", "=nobody"), 400),
        login("authorize POST: unregistered redirect_uri", &evil, 400),
        login("authorize POST: javascript: redirect_uri", js, 400),
        login("authorize POST: wrong password", &format!("{authz}&username=alice&password=x"), 401),
        login("authorize POST: no credentials", &authz, 401),
        login("authorize POST: 5000-char username", &format!("{authz}&username={long}"), 400),
        login("authorize POST: unicode username", &format!("{authz}&username=%E2%80%AE"), 401),
        // ---- JWKS and discovery: junk in the query is ignored; wrong methods are JSON 405
        ok("jwks: junk query", format!("{JWKS}?a=%FF&b&&=&c=%00&a=2")),
        ok("jwks: 5000 parameters", format!("{JWKS}?{many}")),
        ok("jwks: garbage credentials", JWKS)
            .header("authorization", b"Basic \xff")
            .header("cookie", "tessera_session=%01junk;;;=;tessera_csrf"),
        ok("metadata: repeated parameters", format!("{METADATA}?x=1&x=2&x")),
        ok("openid-configuration: invalid UTF-8 query", format!("{OIDC}?%C3%28=%FF")),
        json("jwks: DELETE", "DELETE", JWKS, 405),
        form_type(json("jwks: POST", "POST", JWKS, 405)).body(&cc),
        json("metadata: PUT", "PUT", METADATA, 405),
        form_type(json("openid-configuration: POST", "POST", OIDC, 405)).body("a=b"),
        json("healthz: POST", "POST", "/healthz", 405),
        // ---- unknown paths
        json("unknown: root", "GET", "/", 404),
        json("unknown: /nope", "GET", "/nope", 404),
        json("unknown: API prefix", "POST", "/api/v2/auth", 404),
        json("unknown: revocation feed typo", "GET", "/api/v2/auth/revocation", 404),
        json("unknown: %FF path", "GET", "/%FF%FE", 404),
        json("unknown: traversal", "GET", "/..%2F..%2Fetc%2Fpasswd", 404),
        json("unknown: below jwks", "GET", format!("{JWKS}/extra"), 404),
        // ---- bytes and framing no ordinary client sends (hyper refuses some itself)
        raw("raw: invalid UTF-8 in the target", &[tok_get.as_bytes(), b"\xff"].concat(), "", "",
            Protocol),
        raw("raw: NUL in the target", format!("{tok_get}w\0eb").as_bytes(), "", "", Protocol),
        raw("raw: URI over 64 KiB", format!("{tok_get}{big}").as_bytes(), "", "", Protocol),
        raw("raw: header without colon", tok_post.as_bytes(), "nonsense\r\n", "", Protocol),
        raw("raw: invalid Content-Length", tok_post.as_bytes(), "Content-Length: abc\r\n", &cc,
            Protocol),
        raw("raw: not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "", "",
            Protocol),
        raw("raw: 100 KiB Authorization header", tok_post.as_bytes(),
            &format!("Authorization: Basic {big}\r\nContent-Type: {FORM}\r\nContent-Length: 4\r\n"),
            "a=bc", Json).status(401),
        raw("raw: malformed chunked body", tok_post.as_bytes(), &chunked,
            &format!("zz\r\n{cc}\r\n0\r\n\r\n"), Json).status(400),
        raw("raw: body shorter than Content-Length", tok_post.as_bytes(),
            &format!("Content-Type: {FORM}\r\nContent-Length: 1000\r\n"), &cc, Json).half_close().status(400),
        raw("raw: Content-Length and chunked", tok_post.as_bytes(),
            &format!("{chunked}Content-Length: 3\r\n"), "3\r\na=b\r\n0\r\n\r\n", Json).status(400),
    ]
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn malformed_requests_get_4xx_in_the_right_format_and_the_server_survives() {
    let server = TestServer::start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        // Run every case, then report all failures together.
        let outcome = match send(&http, &server.base, case).await {
            Ok(reply) => std::panic::catch_unwind(|| check(case, &reply)).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| case.name.to_owned())
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "healthz after the corpus");
    let token = http
        .post(server.url(T))
        .basic_auth("svc", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200, "client_credentials after the corpus");
    let json: serde_json::Value = token.json().await.unwrap();
    assert!(json["access_token"].is_string(), "no access token: {json}");
}
