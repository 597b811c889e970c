//! The clock and the calendar: `now()`, `month()`, `year()` and
//! `purchased_in_month()`.

use sqlparser::ast::Spanned;

use super::{Call, Function};
use crate::error::Result;
use crate::rules::expr::{Expr, Ty};
use crate::rules::lower::{Lowerer, Typed};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "now",
        signature: "now() -> timestamp",
        bare: true,
        lower: now,
    },
    Function {
        name: "current_timestamp",
        signature: "current_timestamp() -> timestamp (the same as now())",
        bare: true,
        lower: now,
    },
    Function {
        name: "month",
        signature: "month(timestamp) -> int (1-12)",
        bare: false,
        lower: month_or_year,
    },
    Function {
        name: "year",
        signature: "year(timestamp) -> int",
        bare: false,
        lower: month_or_year,
    },
    Function {
        name: "purchased_in_month",
        signature: "purchased_in_month(month int [, year int]) -> bool",
        bare: false,
        lower: purchased_in_month,
    },
];

fn now(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    call.arity(0, l)?;
    l.uses_time = true;
    Ok((Expr::Now, Ty::Ts))
}

fn month_or_year(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    call.arity(1, l)?;
    let arg = call.positional[0];
    let (x, t) = l.expr(arg)?;
    if !matches!(t, Ty::Ts | Ty::Null) {
        return Err(l.err(
            arg.span(),
            format!("`{}` needs a timestamp, found {}", call.name, t.name()),
        ));
    }
    let e = if call.name == "month" {
        Expr::Month(Box::new(x))
    } else {
        Expr::Year(Box::new(x))
    };
    Ok((e, Ty::Int))
}

fn purchased_in_month(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    let positional = &call.positional;
    if positional.is_empty() || positional.len() > 2 || !call.named.is_empty() {
        return Err(l.err(
            call.span,
            "`purchased_in_month` takes a month (1-12) and optionally a year",
        ));
    }
    l.needs.months = true;
    let m = l.int_arg(positional[0])?;
    let y = match positional.get(1) {
        Some(x) => Some(Box::new(l.int_arg(x)?)),
        None => None,
    };
    Ok((Expr::PurchasedInMonth(Box::new(m), y), Ty::Bool))
}
