-- Per-client token lifetimes: each overrides the server's global value when set. Seconds;
-- NULL means the client uses the global value.

ALTER TABLE clients
    ADD COLUMN access_token_ttl  BIGINT CHECK (access_token_ttl > 0),
    ADD COLUMN refresh_token_ttl BIGINT CHECK (refresh_token_ttl > 0);
