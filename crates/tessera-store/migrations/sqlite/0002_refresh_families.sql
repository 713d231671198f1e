-- Refresh-token families (one per code redemption), their refresh tokens, the access tokens
-- each family issued (so revoking the family can revoke them), and the access-token
-- revocation list, ordered so that it can be followed. Refresh tokens are stored only as SHA-256 hashes.

CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY NOT NULL,
    client_id           TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope               TEXT NOT NULL,
    audience            TEXT NOT NULL,
    auth_time           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER,
    revoked_reason      TEXT
);
CREATE INDEX refresh_families_user_id ON refresh_families (user_id);
CREATE INDEX refresh_families_absolute_expires_at ON refresh_families (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash     BLOB PRIMARY KEY NOT NULL,
    family_id      TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    rotated_at     INTEGER,                 -- NULL while this is the family's live token
    successor_hash BLOB
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);

CREATE TABLE family_access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX family_access_tokens_family_id ON family_access_tokens (family_id);

-- `seq` orders the list so nodes and gateways can follow it with a cursor.
CREATE TABLE revoked_access_tokens (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    jti        TEXT NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

ALTER TABLE authorization_codes ADD COLUMN family_id TEXT;
