//! What a benchmark measures through a forwarder, each with its server side started in
//! the backend's namespace and its client run from the client's:
//!
//! * [`iperf`]: bulk TCP throughput with iperf3, one or several parallel streams;
//! * [`connrate`]: short connections per second (connect, one HTTP request, reply,
//!   close) with a number of concurrent workers, every failure counted.

pub mod connrate;
pub mod iperf;

/// Bits per second as Gbit/s, for reports.
pub fn gbit(bits_per_second: f64) -> f64 {
    bits_per_second / 1e9
}
