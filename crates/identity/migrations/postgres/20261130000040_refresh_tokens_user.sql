-- Signing out everywhere, changing the password and enabling TOTP revoke a user's refresh tokens by user.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
