//! Arrow and JSON views of the engine: change batches, the per-customer
//! snapshot, profiles and segment sizes.

pub mod changes;
pub mod messages;
pub mod profile;
pub mod snapshot;

pub use changes::{change_schema, changes_batch, holdout_flag};
pub use profile::{profile_json, stats_json};
pub use snapshot::{holdout_column, ids_array, ids_for, membership_columns, snapshot_batch};
