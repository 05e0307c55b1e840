//! Phoenix catalog: what can be sold, and for how much.
//!
//! Owns hotels, room types and rate plans; airports, airlines, flight schedules and the departures materialized from
//! them with their cabins and fare classes; prices, taxes and fees, dynamic pricing and display currencies; and
//! search over all of it. Availability always comes from inventory buckets (one per room type per night, one per
//! departure per cabin and per fare class), which the catalog creates and sizes but never decides alone.

pub mod geo;
pub mod money;
pub mod offer;
pub mod pricing;
