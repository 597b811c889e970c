//! Event times from text and numbers: the one parser behind every reader
//! (Arrow columns, JSON messages, the bulk file readers, rule literals and
//! the Python API), so a value means the same instant wherever it arrives.
//!
//! Accepted, value by value: ISO-8601 date-times with `T` or a space, with
//! or without seconds and fractions, with a zone (`Z`, `+02:00`, `+0200`,
//! `+02`, ` UTC`) or without one (then in the declared zone, UTC unless
//! said otherwise); dates (`2024-05-01`, midnight); and epoch numbers, also
//! as text (`1714557600000`), in the declared unit. Arithmetic is on
//! integers throughout: no value goes through a float.

use chrono::{FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::calendar::{format_ts, MAX_TS, MIN_TS};

/// The unit of epoch numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpochUnit {
    /// Milliseconds since 1970-01-01T00:00:00Z (the engine's own unit).
    #[default]
    Millis,
    /// Seconds since 1970-01-01T00:00:00Z (Unix time).
    Seconds,
}

/// Epoch milliseconds below this (1973-03-03T09:46:40Z) are what epoch
/// seconds of any recent date look like when read as milliseconds.
pub const SECONDS_LOOKALIKE_MS: i64 = 100_000_000_000;

/// How to read the values of one time column.
#[derive(Debug, Clone, Copy, Default)]
pub struct TsFormat {
    /// Unit of numbers (and of numeric text).
    pub unit: EpochUnit,
    /// Zone of text without an offset; `None` is UTC.
    pub zone: Option<Tz>,
    /// Refuse epoch milliseconds that look like seconds (before 1973-03-03):
    /// in a file of events such a value is a unit mistake, not a 1970 event.
    pub refuse_seconds_lookalike: bool,
}

impl TsFormat {
    /// A format for `unit` (`ms` or `s`) and an IANA zone name (or `None`
    /// for UTC), or why either is not known.
    pub fn named(unit: &str, zone: Option<&str>) -> Result<Self, String> {
        let unit = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" | "millis" | "milliseconds" => EpochUnit::Millis,
            "s" | "sec" | "seconds" => EpochUnit::Seconds,
            other => return Err(format!("unknown ts unit `{other}`; use ms or s")),
        };
        let zone = zone
            .map(|z| {
                z.parse::<Tz>().map_err(|_| {
                    format!(
                        "unknown time zone `{z}`; use an IANA name such as Europe/Berlin or UTC"
                    )
                })
            })
            .transpose()?;
        Ok(TsFormat {
            unit,
            zone,
            refuse_seconds_lookalike: false,
        })
    }

    /// An epoch number in this format's unit, as milliseconds.
    pub fn number(&self, v: i64) -> Result<i64, String> {
        let ms = match self.unit {
            EpochUnit::Millis => v,
            EpochUnit::Seconds => v
                .checked_mul(1000)
                .ok_or_else(|| format!("`{v}` is out of range as epoch seconds"))?,
        };
        if self.unit == EpochUnit::Millis
            && self.refuse_seconds_lookalike
            && (0..SECONDS_LOOKALIKE_MS).contains(&ms)
        {
            return Err(format!(
                "`{v}` read as epoch milliseconds is {}; if the column holds epoch seconds, \
                 declare it so (--ts-unit s)",
                format_ts(ms)
            ));
        }
        in_range(ms, &v.to_string())
    }

    /// A text value as milliseconds, or why it is none of the accepted forms.
    pub fn text(&self, text: &str) -> Result<i64, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty text is not a time".into());
        }
        if let Some(ms) = self.numeric_text(t)? {
            return Ok(ms);
        }
        let (local, zone) = split_zone(t);
        let Some(naive) = naive(local) else {
            return Err(format!(
                "`{text}` is not a time (expected ISO-8601 such as 2024-05-01, \
                 2024-05-01 10:00:00 or 2024-05-01T10:00:00+02:00, or epoch milliseconds)"
            ));
        };
        let ms = match zone {
            Zone::Offset(off) => off
                .from_local_datetime(&naive)
                .single()
                .map(|d| d.timestamp_millis()),
            Zone::Utc => Some(Utc.from_utc_datetime(&naive).timestamp_millis()),
            Zone::None => match self.zone {
                None => Some(Utc.from_utc_datetime(&naive).timestamp_millis()),
                Some(tz) => match tz.from_local_datetime(&naive) {
                    LocalResult::Single(d) => Some(d.timestamp_millis()),
                    // A wall time seen twice (clocks going back): the first one,
                    // as PostgreSQL and pandas (`ambiguous="earliest"`) choose.
                    LocalResult::Ambiguous(first, _) => Some(first.timestamp_millis()),
                    LocalResult::None => {
                        return Err(format!(
                            "`{text}` does not exist in {tz} (the clocks skip it)"
                        ))
                    }
                },
            },
            Zone::Bad => None,
        };
        let ms = ms.ok_or_else(|| format!("`{text}` has an offset that is not valid"))?;
        in_range(ms, text)
    }

    /// Digits (an optional sign, an optional fraction) are an epoch number.
    fn numeric_text(&self, t: &str) -> Result<Option<i64>, String> {
        let digits = t.strip_prefix('-').unwrap_or(t);
        let (int_part, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(None);
        }
        let negative = t.starts_with('-');
        let whole: i64 = int_part
            .parse()
            .map_err(|_| format!("`{t}` is out of range as an epoch number"))?;
        let whole = if negative { -whole } else { whole };
        // A fraction of a second keeps its milliseconds, exactly (floor below them).
        let ms = match self.unit {
            EpochUnit::Millis => self.number(whole)?,
            EpochUnit::Seconds => {
                let mut sub: i64 = 0;
                for (k, b) in frac.bytes().take(3).enumerate() {
                    sub += i64::from(b - b'0') * 10i64.pow(2 - k as u32);
                }
                let base = self.number(whole)?;
                let ms = if negative { base - sub } else { base + sub };
                in_range(ms, t)?
            }
        };
        Ok(Some(ms))
    }
}

/// Parses an ISO-8601 time, a date or epoch milliseconds as text, UTC
/// unless the text gives an offset: `TsFormat::default().text`.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, String> {
    TsFormat::default().text(text)
}

fn in_range(ms: i64, shown: &str) -> Result<i64, String> {
    if (MIN_TS..=MAX_TS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("`{shown}` is outside the years 1900..9999"))
    }
}

enum Zone {
    /// No zone in the text.
    None,
    /// `Z` or `UTC`.
    Utc,
    Offset(FixedOffset),
    /// Looked like an offset but is not one (`+25:00`).
    Bad,
}

/// The text before its zone suffix, and the zone.
fn split_zone(t: &str) -> (&str, Zone) {
    if let Some(rest) = t.strip_suffix(['Z', 'z']) {
        return (rest, Zone::Utc);
    }
    for suffix in [" UTC", " utc", " GMT", "UTC"] {
        if let Some(rest) = t.strip_suffix(suffix) {
            return (rest.trim_end(), Zone::Utc);
        }
    }
    // An offset follows the time part: search after the date's own dashes.
    let Some(sign_at) = t
        .char_indices()
        .skip(10)
        .filter(|&(_, c)| c == '+' || c == '-')
        .map(|(i, _)| i)
        .last()
    else {
        return (t, Zone::None);
    };
    let (local, off) = t.split_at(sign_at);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return (t, Zone::None);
    }
    let hours: i32 = digits[..2].parse().unwrap_or(99);
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().unwrap_or(99)
    } else {
        0
    };
    match FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)) {
        Some(o) if minutes < 60 => (local.trim_end(), Zone::Offset(o)),
        _ => (local, Zone::Bad),
    }
}

/// A zone-less date-time or date.
fn naive(t: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z

    fn utc(text: &str) -> Result<i64, String> {
        TsFormat::default().text(text)
    }

    #[test]
    fn iso_forms_with_and_without_zone() {
        for text in [
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00.000Z",
            "2024-05-01 10:00:00",
            "2024-05-01T10:00",
            "2024-05-01 12:00:00+02:00",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00+02",
            "2024-05-01T07:30:00-02:30",
            "2024-05-01 10:00:00 UTC",
            "1714557600000",
            " 2024-05-01T10:00:00Z ",
        ] {
            assert_eq!(utc(text), Ok(T), "{text}");
        }
        assert_eq!(utc("2024-05-01"), Ok(T - 10 * 3_600_000));
        assert_eq!(utc("2024-05-01T10:00:00.123456Z"), Ok(T + 123));
    }

    #[test]
    fn milliseconds_are_exact() {
        // 2038 and beyond: a float `timestamp() * 1000` rounds some of these.
        assert_eq!(utc("2100-01-01T00:00:00.001Z"), Ok(4_102_444_800_001));
        assert_eq!(utc("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn seconds_when_declared() {
        let f = TsFormat::named("s", None).unwrap();
        assert_eq!(f.text("1714557600"), Ok(T));
        assert_eq!(f.text("1714557600.25"), Ok(T + 250));
        assert_eq!(f.number(1_714_557_600), Ok(T));
        assert!(f.number(i64::MAX).is_err());
    }

    #[test]
    fn seconds_read_as_millis_are_refused_when_asked() {
        let f = TsFormat {
            refuse_seconds_lookalike: true,
            ..TsFormat::default()
        };
        let err = f.text("1714557600").unwrap_err();
        assert!(err.contains("--ts-unit s"), "{err}");
        assert_eq!(f.text("1714557600000"), Ok(T));
        assert!(TsFormat::default().text("1714557600").is_ok());
    }

    #[test]
    fn zone_less_text_in_the_declared_zone() {
        let berlin = TsFormat::named("ms", Some("Europe/Berlin")).unwrap();
        assert_eq!(berlin.text("2024-05-01 12:00:00"), Ok(T));
        // An explicit offset wins over the declared zone.
        assert_eq!(berlin.text("2024-05-01T10:00:00Z"), Ok(T));
        assert!(berlin
            .text("2024-03-31 02:30:00")
            .unwrap_err()
            .contains("skip"));
        assert!(TsFormat::named("ms", Some("Mars/Olympus")).is_err());
        assert!(TsFormat::named("minutes", None).is_err());
    }

    #[test]
    fn bad_values_say_why() {
        assert!(utc("notadate").unwrap_err().contains("`notadate`"));
        assert!(utc(" ").unwrap_err().contains("empty"));
        assert!(utc("2024-13-01").is_err());
        assert!(utc("2024-05-01T10:00:00+25:00").is_err());
        assert!(utc("+10000-01-01T00:00:00Z").is_err());
        assert!(utc("99999999999999999999").is_err());
        assert!(utc("9999-12-31T23:59:59.999Z").is_ok());
        assert!(utc("1899-12-31").unwrap_err().contains("1900..9999"));
    }
}
