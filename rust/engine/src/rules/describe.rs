//! A readable account of a compiled rule set: each segment's rule, what it
//! depends on, whether time alone can change it, and the state kept for it.

use serde_json::json;

use super::compile::{compile_ruleset, NodeKind};
use super::needs::{source_word, Window};
use super::ruleset::RuleSetSpec;
use crate::error::Result;
use crate::time::format_ts;

/// JSON text describing the compiled rules.
pub fn describe(spec: &RuleSetSpec) -> Result<String> {
    let rules = compile_ruleset(spec)?;
    let nodes: Vec<_> = rules
        .nodes
        .iter()
        .map(|n| {
            let deps: Vec<&str> = n
                .deps
                .iter()
                .map(|&d| rules.nodes[d].name.as_str())
                .collect();
            match &n.kind {
                NodeKind::Segment {
                    holdout, cooldown, ..
                } => json!({
                    "name": n.name, "kind": "segment",
                    "rule": spec.segments.iter().find(|s| s.name == n.name).map(|s| s.rule.trim()),
                    "time_dependent": n.time_dependent, "depends_on": deps,
                    "holdout": holdout, "cooldown_ms": cooldown,
                }),
                NodeKind::Lifecycle { stages } => json!({
                    "name": n.name, "kind": "lifecycle",
                    "stages": stages.iter().map(|(s, _)| s).collect::<Vec<_>>(),
                    "time_dependent": n.time_dependent, "depends_on": deps,
                }),
            }
        })
        .collect();
    let kept: Vec<String> = rules
        .needs
        .accumulators
        .iter()
        .map(|a| {
            let w = match a.window {
                Window::All => "all time".to_string(),
                Window::Since(s) => format!("since {}", format_ts(s)),
                Window::Between(x, y) => format!("{} to {}", format_ts(x), format_ts(y)),
            };
            format!("{:?} of {} ({w})", a.measure, source_word(&a.source)).to_lowercase()
        })
        .chain(rules.needs.histories.iter().map(|h| {
            format!(
                "window of {} over the last {} days",
                source_word(&h.source),
                h.lookback as f64 / 86_400_000.0
            )
        }))
        .chain(
            rules
                .needs
                .category_set
                .then(|| "set of categories bought".to_string()),
        )
        .chain(
            rules
                .needs
                .product_set
                .then(|| "set of products bought".to_string()),
        )
        .chain(
            rules
                .needs
                .months
                .then(|| "months with a purchase".to_string()),
        )
        .collect();
    let longest = rules
        .needs
        .histories
        .iter()
        .map(|h| h.lookback)
        .max()
        .unwrap_or(0);
    Ok(json!({
        "fingerprint": rules.fingerprint,
        "currency_scale": spec.currency_scale,
        "allowed_lateness_ms": rules.lateness,
        "nodes": nodes,
        "state_kept": kept,
        "longest_lookback_days": longest as f64 / 86_400_000.0,
        "traits": rules.traits.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
    })
    .to_string())
}
