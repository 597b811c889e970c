//! Time: parsing durations and timestamps, calendar helpers, and the timer
//! index that wakes customers whose membership can change with time alone.

pub mod calendar;
pub mod parse;
pub mod timers;

pub use calendar::{
    format_ts, month_of, next_month_start, next_year_start, parse_duration_ms, year_of, MAX_TS,
    MIN_TS,
};
pub use parse::{parse_timestamp_ms, EpochUnit, TsFormat};
pub use timers::TimerIndex;

/// The wall clock in epoch milliseconds: what `max_future` is measured from.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
