-- Expired refresh tokens are deleted every hour (`Service::prune_refresh_tokens`).
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
