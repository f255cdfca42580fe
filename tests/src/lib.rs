//! The workspace's end-to-end tests (`tests/*.rs`, one file per feature) and their one
//! support library, [`support`]. Not published.
#![warn(missing_docs)]

pub mod support;
