//! The catalogue of one server's backups lives in the repository layer; this module is its
//! place in the workflows' vocabulary.

pub use pgbak_repo::backups::*;
