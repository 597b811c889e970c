//! Measuring what segments do (docs/measure.md): the hook that records each
//! entry as it is made, and the uplift report over the counters that
//! `state::conversions` keeps.

pub mod entries;
pub mod uplift;

pub use entries::record_entries;
pub use uplift::{uplift_batch, uplift_schema};
