-- A hold a service made on a client's behalf (the booking saga, through the internal routes) is confirmed and
-- released only through that service: over the public API it is refused, so a booking's units cannot go back on
-- sale while the booking stands.
ALTER TABLE holds ADD COLUMN managed BOOLEAN NOT NULL DEFAULT FALSE;
