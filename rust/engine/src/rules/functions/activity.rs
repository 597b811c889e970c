//! Purchase history: counts, spend, first and last purchase, and whether a
//! category or product was ever bought, each with optional filters and a
//! time window.

use sqlparser::ast::Spanned;

use super::{Call, Function};
use crate::error::Result;
use crate::rules::expr::{Expr, Ty};
use crate::rules::lower::{Lowerer, Typed};
use crate::rules::needs::{Accumulator, Measure, Source, Window};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "has_category",
        signature: "has_category('category') -> bool",
        bare: false,
        lower: has_item,
    },
    Function {
        name: "has_product",
        signature: "has_product('product') -> bool",
        bare: false,
        lower: has_item,
    },
    Function {
        name: "purchases",
        signature: "purchases([product =>, category =>, flag =>] [within => | since => | between =>]) -> int",
        bare: false,
        lower: purchases_or_spend,
    },
    Function {
        name: "spend",
        signature: "spend([product =>, category =>, flag =>] [within => | since => | between =>]) -> money",
        bare: false,
        lower: purchases_or_spend,
    },
    Function {
        name: "first_purchase_at",
        signature: "first_purchase_at([product =>, category =>, flag =>]) -> timestamp",
        bare: false,
        lower: first_or_last_purchase,
    },
    Function {
        name: "last_purchase_at",
        signature: "last_purchase_at([product =>, category =>, flag =>]) -> timestamp",
        bare: false,
        lower: first_or_last_purchase,
    },
];

fn has_item(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    call.arity(1, l)?;
    let v = l.string_arg(call.positional[0])?;
    let source = if call.name == "has_category" {
        Source::Purchase {
            product: None,
            category: Some(v),
            flag: None,
        }
    } else {
        Source::Purchase {
            product: Some(v),
            category: None,
            flag: None,
        }
    };
    let i = l.needs.accumulator(Accumulator {
        source,
        window: Window::All,
        measure: Measure::First,
    });
    Ok((Expr::IsNull(Box::new(Expr::Acc(i, Ty::Ts)), true), Ty::Bool))
}

fn purchases_or_spend(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    let name = call.name;
    if let Some(x) = call.positional.first() {
        return Err(l.err(x.span(), format!("`{name}` takes named arguments only: product =>, category =>, flag =>, within =>, since =>, between =>")));
    }
    let (source, window, within) = l.filters(&call.named, true, None)?;
    let (measure, ty) = if name == "purchases" {
        (Measure::Count, Ty::Int)
    } else {
        (Measure::Spend, Ty::Money)
    };
    Ok(l.windowed(source, window, within, measure, ty))
}

fn first_or_last_purchase(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    let name = call.name;
    if let Some(x) = call.positional.first() {
        return Err(l.err(
            x.span(),
            format!("`{name}` takes named filters only: product =>, category =>, flag =>"),
        ));
    }
    let (source, window, within) = l.filters(&call.named, true, None)?;
    if within.is_some() || window != Window::All {
        return Err(l.err(call.span, format!("`{name}` takes no time window")));
    }
    let measure = if name == "first_purchase_at" {
        Measure::First
    } else {
        Measure::Last
    };
    let i = l.needs.accumulator(Accumulator {
        source,
        window,
        measure,
    });
    Ok((Expr::Acc(i, Ty::Ts), Ty::Ts))
}
