//! The built-in functions: one registry entry per function with its name,
//! signature and lowering, grouped by family. Everything that needs the list
//! of functions (the lowering of a call, "did you mean", names a trait may
//! not take) reads it here.

mod activity;
mod calendar;
mod membership;
mod scalar;
mod signals;

use sqlparser::ast::{self as sql, Spanned};
use sqlparser::tokenizer::Span;

use super::diagnostics::did_you_mean;
use super::expr::{Expr, Ty, Value};
use super::lower::{Lowerer, Typed};
use super::needs::{Accumulator, Measure, Source, Window};
use crate::error::Result;
use crate::time::parse_timestamp_ms;

/// Lowers one call of a function.
pub(super) type Lower = fn(&mut Lowerer<'_>, &Call<'_>) -> Result<Typed>;

/// A built-in function.
pub struct Function {
    /// Name as written in rules (lowercase).
    pub name: &'static str,
    /// How it is called, for messages and documentation.
    pub signature: &'static str,
    /// True when SQL also lets it be written without parentheses.
    pub bare: bool,
    /// Turns a call into a typed expression.
    pub(super) lower: Lower,
}

/// One call as the rule wrote it: positional arguments, then named ones.
pub struct Call<'s> {
    /// Function name, lowercased.
    pub name: &'s str,
    /// Positional arguments in order.
    pub positional: Vec<&'s sql::Expr>,
    /// Named arguments: key (lowercased), value, span of the key.
    pub named: Vec<(String, &'s sql::Expr, Span)>,
    /// Span of the whole call.
    pub span: Span,
}

const FAMILIES: &[&[Function]] = &[
    activity::FUNCTIONS,
    signals::FUNCTIONS,
    calendar::FUNCTIONS,
    membership::FUNCTIONS,
    scalar::FUNCTIONS,
];

/// Every built-in function, family by family.
pub fn all() -> impl Iterator<Item = &'static Function> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The function called `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static Function> {
    all().find(|f| f.name == name)
}

/// The names of all built-in functions.
pub fn names() -> impl Iterator<Item = &'static str> {
    all().map(|f| f.name)
}

impl Call<'_> {
    /// Refuses the call unless it has exactly `n` positional arguments and no
    /// named ones.
    pub(super) fn arity(&self, n: usize, l: &Lowerer<'_>) -> Result<()> {
        if self.positional.len() != n || !self.named.is_empty() {
            Err(l.err(
                self.span,
                format!(
                    "`{}` takes {n} argument{}",
                    self.name,
                    if n == 1 { "" } else { "s" }
                ),
            ))
        } else {
            Ok(())
        }
    }
}

/// Argument readers shared by the families.
impl Lowerer<'_> {
    pub(super) fn windowed(
        &mut self,
        source: Source,
        window: Window,
        within: Option<i64>,
        measure: Measure,
        ty: Ty,
    ) -> Typed {
        if let Some(d) = within {
            self.uses_time = true;
            let h = self.needs.history(source, d);
            let e = if measure == Measure::Count {
                Expr::WindowCount(h, d)
            } else {
                Expr::WindowSpend(h, d)
            };
            (e, ty)
        } else {
            let i = self.needs.accumulator(Accumulator {
                source,
                window,
                measure,
            });
            (Expr::Acc(i, ty), ty)
        }
    }

    /// Reads filter and window arguments.
    pub(super) fn filters(
        &mut self,
        named: &[(String, &sql::Expr, Span)],
        purchase: bool,
        signal: Option<String>,
    ) -> Result<(Source, Window, Option<i64>)> {
        let (mut product, mut category, mut flag) = (None, None, None);
        let mut window = Window::All;
        let mut within = None;
        let mut time_args = 0;
        for (key, x, kspan) in named {
            match key.as_str() {
                "product" if purchase => product = Some(self.string_arg(x)?),
                "category" if purchase => category = Some(self.string_arg(x)?),
                "flag" if purchase => flag = Some(self.string_arg(x)?),
                "within" => {
                    time_args += 1;
                    let (e, t) = self.expr(x)?;
                    match (t, e) {
                        (Ty::Interval, Expr::Lit(Value::Interval(ms))) if ms > 0 => {
                            within = Some(ms)
                        }
                        _ => return Err(self.err(
                            x.span(),
                            "`within` needs a positive constant interval, e.g. INTERVAL '30 days'",
                        )),
                    }
                }
                "since" => {
                    time_args += 1;
                    window = Window::Since(self.ts_arg(x)?);
                }
                "between" => {
                    time_args += 1;
                    let sql::Expr::Tuple(items) = x else {
                        return Err(self.err(x.span(), "`between` needs two timestamps: between => (DATE '2024-11-01', DATE '2024-12-01')"));
                    };
                    if items.len() != 2 {
                        return Err(self.err(x.span(), "`between` needs exactly two timestamps"));
                    }
                    let (a, b) = (self.ts_arg(&items[0])?, self.ts_arg(&items[1])?);
                    if a >= b {
                        return Err(
                            self.err(x.span(), "`between`: the start must come before the end")
                        );
                    }
                    window = Window::Between(a, b);
                }
                other => {
                    let allowed: &[&str] = if purchase {
                        &["product", "category", "flag", "within", "since", "between"]
                    } else {
                        &["within", "since", "between"]
                    };
                    let hint = did_you_mean(other, allowed.iter().copied());
                    return Err(self.err(
                        *kspan,
                        format!(
                            "unknown argument `{other}`{hint} (allowed: {})",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
        }
        if time_args > 1 {
            return Err(self.err(
                named[0].2,
                "give at most one of `within`, `since`, `between`",
            ));
        }
        let source = match signal {
            Some(s) => Source::Signal(s),
            None => Source::Purchase {
                product,
                category,
                flag,
            },
        };
        Ok((source, window, within))
    }

    pub(super) fn string_arg(&mut self, x: &sql::Expr) -> Result<String> {
        match x {
            sql::Expr::Value(v) => match &v.value {
                sql::Value::SingleQuotedString(s) | sql::Value::DoubleQuotedString(s) => {
                    Ok(s.clone())
                }
                _ => Err(self.err(x.span(), "expected a quoted string such as 'kitchen'")),
            },
            _ => Err(self.err(x.span(), "expected a quoted string such as 'kitchen'")),
        }
    }

    pub(super) fn ts_arg(&mut self, x: &sql::Expr) -> Result<i64> {
        let (e, t) = self.expr(x)?;
        match (t, e) {
            (Ty::Ts, Expr::Lit(Value::Ts(ms))) => Ok(ms),
            (Ty::Str, Expr::Lit(Value::Str(s))) => {
                parse_timestamp_ms(&s).map_err(|m| self.err(x.span(), m))
            }
            _ => Err(self.err(
                x.span(),
                "expected a constant timestamp such as DATE '2024-01-01'",
            )),
        }
    }

    pub(super) fn int_arg(&mut self, x: &sql::Expr) -> Result<Expr> {
        let (e, t) = self.expr(x)?;
        if matches!(t, Ty::Int | Ty::Null) {
            Ok(e)
        } else {
            Err(self.err(x.span(), format!("expected an integer, found {}", t.name())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_is_registered_once() {
        let mut seen = std::collections::HashSet::new();
        for f in all() {
            assert!(seen.insert(f.name), "`{}` is registered twice", f.name);
            assert_eq!(f.name, f.name.to_ascii_lowercase());
            assert!(f.signature.starts_with(f.name), "{}", f.signature);
        }
    }

    #[test]
    fn current_timestamp_is_a_function_like_now() {
        let f = lookup("current_timestamp").expect("registered");
        assert!(f.bare);
        assert!(lookup("now").is_some());
    }
}
