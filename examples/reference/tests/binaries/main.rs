//! The tests that run this package's binaries (`reference`, `soak`) or measure a server
//! process from outside, one module per feature, linked into one test binary.

mod binary;
mod cluster;
mod engine_memory;
mod metrics;
mod soak_short;
