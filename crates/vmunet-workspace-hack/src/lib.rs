//! Build-time only: no code. Its `Cargo.toml` asks for the features that the full workspace
//! build selects on shared low-level crates, so that the deployment build (which depends on it
//! through `vmunet-cli`) compiles them with the same features and reuses the full build's
//! artifacts in the shared target folder. See the comment in `Cargo.toml`.
