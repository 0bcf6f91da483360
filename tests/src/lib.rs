//! Harness for the workspace's end-to-end tests: real hub, gateway and
//! third-party peer processes on loopback.
pub mod pg;
pub mod procs;
