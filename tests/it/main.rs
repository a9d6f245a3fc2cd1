//! Integration tests: the built `cube-extract` binary against the Cube simulator over loopback.
//! One test binary (fast to build); each test gets its own simulator and temp dir.

#[path = "../../examples/cube_sim.rs"]
pub mod cube_sim;
mod s3;
mod support;

mod extract;
mod reliability;
mod s3_dest;
mod usage;
