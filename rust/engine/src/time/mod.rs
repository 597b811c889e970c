//! Time: parsing durations and timestamps, calendar helpers, and the timer
//! index that wakes customers whose membership can change with time alone.

pub mod calendar;
pub mod timers;

pub use calendar::{
    format_ts, month_of, next_month_start, next_year_start, parse_duration_ms, parse_timestamp_ms,
    year_of, MAX_TS, MIN_TS,
};
pub use timers::TimerIndex;
