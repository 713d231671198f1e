-- Consent and sign-out. Clients gain `first_party` (their users are never asked for
-- consent) and the URIs a browser may be sent back to after signing out; users' consents
-- to the other clients are remembered per user and client until revoked.
--
-- Clients registered before this migration keep signing users in without a consent page,
-- as they did: they become first-party. New registrations are third-party unless
-- registered with `--first-party`.

ALTER TABLE clients
    ADD COLUMN first_party               BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]'; -- JSON array
UPDATE clients SET first_party = TRUE;

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,             -- space-delimited, every scope approved so far
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);
