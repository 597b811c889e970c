//! Measuring what segments do (docs/measure.md): the hook that records each
//! entry as it is made, and the uplift report over the counters that
//! `state::conversions` keeps.

pub mod caps;
pub mod entries;
pub mod merge_alias;
pub mod uplift;

pub use caps::FrequencyCaps;
pub use entries::record_entries;
pub use uplift::{uplift_batch, uplift_of, uplift_schema};
