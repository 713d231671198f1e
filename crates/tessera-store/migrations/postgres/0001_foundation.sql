-- Tessera foundation schema (PostgreSQL): clients, users, authorization codes, browser
-- sessions and signing keys. The same tables as the SQLite schema: secrets (client secrets,
-- codes, session ids) are stored only as SHA-256 hashes, private keys only sealed under the
-- master key. Times are Unix seconds (BIGINT), lists JSON arrays in TEXT columns, so both
-- adapters decode rows the same way.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   BYTEA,                     -- NULL for public clients
    redirect_uris TEXT NOT NULL,             -- JSON array of exact URIs
    grant_types   TEXT NOT NULL,             -- JSON array
    scopes        TEXT NOT NULL,             -- space-delimited
    audiences     TEXT NOT NULL,             -- JSON array; the first is the default
    created_at    BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,             -- Argon2id PHC string
    roles         TEXT NOT NULL,             -- JSON array
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE authorization_codes (
    code_hash             BYTEA PRIMARY KEY,
    client_id             TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri          TEXT NOT NULL,
    redirect_uri_explicit BOOLEAN NOT NULL,
    code_challenge        TEXT NOT NULL,
    scope                 TEXT NOT NULL,
    resource              TEXT,
    auth_time             BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    used_at               BIGINT
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
-- PostgreSQL does not index the referencing side of a foreign key: without these, deleting
-- a client or user scans every code for the cascade.
CREATE INDEX authorization_codes_client_id ON authorization_codes (client_id);
CREATE INDEX authorization_codes_user_id ON authorization_codes (user_id);

CREATE TABLE browser_sessions (
    id_hash    BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);

-- The key schedule: `generation` is unique, so of several nodes scheduling the same
-- rotation exactly one insert wins; states are derived from `activates_at` and `revoked_at`.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    generation     BIGINT NOT NULL UNIQUE,
    public_jwk     TEXT NOT NULL,            -- JSON
    sealed_private BYTEA NOT NULL,           -- AES-256-GCM under the master key, kid as AAD
    created_at     BIGINT NOT NULL,
    activates_at   BIGINT NOT NULL,
    revoked_at     BIGINT
);
