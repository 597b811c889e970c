//! Millisecond timestamps (UTC) and the few calendar facts rules need.

use chrono::{DateTime, Datelike, TimeZone, Utc};

/// Earliest accepted event time: 1900-01-01T00:00:00Z.
pub const MIN_TS: i64 = -2_208_988_800_000;
/// Latest accepted event time: 9999-12-31T23:59:59.999Z.
pub const MAX_TS: i64 = 253_402_300_799_999;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Parses `"30 days"`, `"1 hour"`, `"90d"`, `"500 ms"` into milliseconds.
/// Months and years are refused because their length varies.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it as `30 days` or `12 hours`"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "duration `{text}` must be a non-negative number of units"
        ));
    }
    let per = match unit {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "second" | "seconds" => SECOND,
        "m" | "min" | "minute" | "minutes" => MINUTE,
        "h" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => WEEK,
        "month" | "months" | "mon" | "mons" | "year" | "years" | "y" => {
            return Err(format!(
                "duration `{text}`: months and years vary in length; write days instead (e.g. `365 days`)"
            ))
        }
        "" => return Err(format!("duration `{text}` needs a unit (ms, seconds, minutes, hours, days, weeks)")),
        other => {
            return Err(format!(
                "duration `{text}`: unknown unit `{other}` (use ms, seconds, minutes, hours, days or weeks)"
            ))
        }
    };
    let ms = value * per as f64;
    if ms > 1e17 {
        return Err(format!("duration `{text}` is too long"));
    }
    Ok(ms.round() as i64)
}

fn to_datetime(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// Calendar month (1–12) of a timestamp.
pub fn month_of(ms: i64) -> Option<i64> {
    to_datetime(ms).map(|d| d.month() as i64)
}

/// Calendar year of a timestamp.
pub fn year_of(ms: i64) -> Option<i64> {
    to_datetime(ms).map(|d| d.year() as i64)
}

/// `year * 12 + (month - 1)`: one integer per calendar month.
pub fn month_key(ms: i64) -> Option<i64> {
    to_datetime(ms).map(|d| d.year() as i64 * 12 + d.month0() as i64)
}

/// First instant of the month after the one containing `ms`.
pub fn next_month_start(ms: i64) -> Option<i64> {
    let d = to_datetime(ms)?;
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    Some(
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()?
            .timestamp_millis(),
    )
}

/// First instant of the year after the one containing `ms`.
pub fn next_year_start(ms: i64) -> Option<i64> {
    let d = to_datetime(ms)?;
    Some(
        Utc.with_ymd_and_hms(d.year() + 1, 1, 1, 0, 0, 0)
            .single()?
            .timestamp_millis(),
    )
}

/// RFC 3339 rendering for messages.
pub fn format_ts(ms: i64) -> String {
    to_datetime(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30 days").unwrap(), 30 * DAY);
        assert_eq!(parse_duration_ms("1 hour").unwrap(), HOUR);
        assert_eq!(parse_duration_ms("90d").unwrap(), 90 * DAY);
        assert!(parse_duration_ms("1 month")
            .unwrap_err()
            .contains("days instead"));
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn calendar_boundaries() {
        assert_eq!(next_month_start(0).unwrap(), 31 * DAY);
        assert_eq!(month_of(0), Some(1));
    }
}
