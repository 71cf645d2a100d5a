//! DNS that hands out a random rotating subset of the grid's healthy gateway addresses
//! (issue 5, in progress): attackers who pay for a limited number of target addresses
//! hit only a fraction of the grid, and a dead or attacked gateway drops out.
//!
//! * [`select`]: which addresses one answer holds: N drawn at random from the healthy
//!   ones, never an empty answer, the fallback policy when none is healthy.
//! * [`health`]: health checks of every gateway address with rise/fall hysteresis.
//! * [`answer`]: the authoritative response to one query (no I/O): addresses from the
//!   pool, SOA and NS at the apex, NXDOMAIN/NODATA with the SOA, REFUSED outside the zone.
//! * [`server`]: the UDP and TCP server (hickory-server) around [`answer`], the pool
//!   swapped in when health changes, and the query metrics.

pub mod answer;
pub mod daemon;
pub mod health;
pub mod select;
pub mod server;
