//! Tessera's persistence and key-material adapters.
//!
//! - [`sqlite`]: the embedded default, implementing every store port of `tessera-core` on
//!   one SQLite file through sqlx, with the schema migrations applied at open.
//! - [`key_material`]: RSA signing keys generated with aws-lc-rs, sealed at rest with
//!   AES-256-GCM under the [`master_key`], and held parsed in memory for signing.
//! - [`random`]: the OS CSPRNG behind the core's `SecureRandom` port.
//!
//! PostgreSQL joins `sqlite` as a second adapter behind the same ports (see DESIGN.md).

#![warn(missing_docs)]

pub mod key_material;
pub mod master_key;
pub mod random;
pub mod sqlite;

pub use master_key::MasterKey;
pub use random::OsRandom;
pub use sqlite::SqliteStore;
