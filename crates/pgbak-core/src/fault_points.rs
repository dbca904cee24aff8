//! Test-only pause points live in the repository layer, where the steps they split are; this
//! module is their place in the workflows' vocabulary.

pub use pgbak_repo::fault_points::*;
