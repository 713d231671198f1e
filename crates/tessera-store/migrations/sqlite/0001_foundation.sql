-- Tessera foundation schema: clients, users, authorization codes, browser sessions and
-- signing keys. Secrets (client secrets, codes, session ids) are stored only as SHA-256
-- hashes; private keys only sealed under the master key.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    secret_hash   BLOB,                      -- NULL for public clients
    redirect_uris TEXT NOT NULL,             -- JSON array of exact URIs
    grant_types   TEXT NOT NULL,             -- JSON array
    scopes        TEXT NOT NULL,             -- space-delimited
    audiences     TEXT NOT NULL,             -- JSON array; the first is the default
    created_at    INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,             -- Argon2id PHC string
    roles         TEXT NOT NULL,             -- JSON array
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE authorization_codes (
    code_hash             BLOB PRIMARY KEY NOT NULL,
    client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_explicit INTEGER NOT NULL,
    code_challenge        TEXT NOT NULL,
    scope                 TEXT NOT NULL,
    resource              TEXT,
    auth_time             INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    used_at               INTEGER
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE browser_sessions (
    id_hash    BLOB PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);

-- The key schedule: `generation` is unique, so of several nodes scheduling the same
-- rotation exactly one insert wins; states are derived from `activates_at` and `revoked_at`.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY NOT NULL,
    generation     INTEGER NOT NULL UNIQUE,
    public_jwk     TEXT NOT NULL,            -- JSON
    sealed_private BLOB NOT NULL,            -- AES-256-GCM under the master key, kid as AAD
    created_at     INTEGER NOT NULL,
    activates_at   INTEGER NOT NULL,
    revoked_at     INTEGER
);
