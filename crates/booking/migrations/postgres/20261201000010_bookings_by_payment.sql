-- A refund made on a booking's payment outside a cancellation finds its booking by the payment the saga recorded.
CREATE INDEX bookings_payment ON bookings (payment_id) WHERE payment_id IS NOT NULL;
