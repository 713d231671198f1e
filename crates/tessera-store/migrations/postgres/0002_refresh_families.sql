-- Refresh-token families (one per code redemption), their refresh tokens, the access tokens
-- each family issued (so revoking the family can revoke them), and the access-token
-- revocation list, ordered so that it can be followed. Refresh tokens are stored only as
-- SHA-256 hashes.

CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope               TEXT NOT NULL,
    audience            TEXT NOT NULL,
    auth_time           BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT,
    revoked_reason      TEXT
);
CREATE INDEX refresh_families_user_id ON refresh_families (user_id);
CREATE INDEX refresh_families_client_id ON refresh_families (client_id);
CREATE INDEX refresh_families_absolute_expires_at ON refresh_families (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash     BYTEA PRIMARY KEY,
    family_id      TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    issued_at      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    rotated_at     BIGINT,                   -- NULL while this is the family's live token
    successor_hash BYTEA
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE family_access_tokens (
    jti        TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX family_access_tokens_family_id ON family_access_tokens (family_id);
CREATE INDEX family_access_tokens_expires_at ON family_access_tokens (expires_at);

-- `seq` orders the list so nodes and gateways can follow it with a cursor. Every
-- transaction that inserts here first takes one transaction-scoped advisory lock, so
-- entries commit in `seq` order and a follower reading `seq > cursor` never skips one.
-- The identity sequence is the high-water mark `latest_seq` reads: it never goes back,
-- even when the janitor deletes the newest rows.
CREATE TABLE revoked_access_tokens (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jti        TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);

ALTER TABLE authorization_codes ADD COLUMN family_id TEXT;
