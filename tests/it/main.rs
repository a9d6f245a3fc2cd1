//! Integration tests: the built `cube-extract` binary against the Cube simulator over loopback.
//! One test binary (fast to build); each test gets its own simulator and temp dir.

#[path = "../../examples/cube_sim/main.rs"]
pub mod cube_sim;
mod s3;
mod support;

/// Runs a test `fn name(backend: Backend)` once on local disk and once on S3 (see `extract.rs`).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $name() { super::$name(super::Backend::Local) })*
        }
        mod s3 {
            $(#[test] fn $name() { super::$name(super::Backend::S3) })*
        }
    };
}

mod datasets;
mod delta;
mod extract;
mod months;
mod operations;
mod reliability;
mod s3_dest;
mod scopes;
mod snapshots;
mod store_faults;
mod summary;
mod terminal;
mod timezone;
mod usage;
