-- OpenID Connect. Users gain the standard claims the `profile` and `email` scopes release
-- (OIDC Core §5.1): a display name and an email address the operator may vouch for.
-- Authorization codes remember the request's `nonce`, which the ID token issued for the
-- code must carry back (OIDC Core §3.1.2.1). Existing users have no profile; existing
-- codes were issued without one.

ALTER TABLE users ADD COLUMN name TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE authorization_codes ADD COLUMN nonce TEXT;
