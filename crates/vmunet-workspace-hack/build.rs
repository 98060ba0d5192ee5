//! Present only so that the `[build-dependencies]` in `Cargo.toml` take part in the host-side
//! feature resolution (cargo ignores build-dependencies of a crate without a build script).
fn main() {}
