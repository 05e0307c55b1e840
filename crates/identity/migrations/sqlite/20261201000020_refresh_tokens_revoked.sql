-- The gateway reads ended sessions in the order they ended (`Service::revocations`), to refuse their access tokens.
CREATE INDEX refresh_tokens_revoked ON refresh_tokens (revoked_at, id) WHERE revoked_at IS NOT NULL;
