//! Compile-error messages: location, the source line with a caret, and the
//! nearest known name.

use crate::error::{EngineError, RuleLocation};

/// Builds a rule error pointing at `line`/`column` (1-based) of `source`.
pub fn rule_error(
    segment: &str,
    source: &str,
    line: u64,
    column: u64,
    width: usize,
    message: &str,
) -> EngineError {
    let line = line.max(1);
    let column = column.max(1);
    let text_line = source.lines().nth((line - 1) as usize).unwrap_or("");
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret_pad: String = text_line
        .chars()
        .take((column - 1) as usize)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let full = format!(
        "rule `{segment}`, line {line}, column {column}: {message}\n{pad} |\n{gutter} | {text_line}\n{pad} | {caret_pad}{}",
        "^".repeat(width.max(1))
    );
    EngineError::Rule {
        message: full,
        location: Some(RuleLocation {
            segment: segment.to_string(),
            line,
            column,
            source: source.to_string(),
        }),
    }
}

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a distance that still looks like a typo.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` or nothing.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    nearest(name, candidates)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Pulls `Line: x, Column: y` out of a sqlparser message.
pub fn parser_location(msg: &str) -> (u64, u64) {
    let grab = |key: &str| -> Option<u64> {
        let at = msg.find(key)? + key.len();
        let digits: String = msg[at..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    (grab("Line:").unwrap_or(1), grab("Column:").unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(nearest("lvt", ["ltv", "orders", "aov"]), Some("ltv"));
        assert_eq!(nearest("zzzzzz", ["ltv", "orders"]), None);
    }

    #[test]
    fn caret_points_at_column() {
        let e = rule_error("vip", "lvt >= 1", 1, 1, 3, "unknown field `lvt`");
        let s = e.to_string();
        assert!(s.contains("1 | lvt >= 1"));
        assert!(s.ends_with("| ^^^"), "{s}");
    }
}
