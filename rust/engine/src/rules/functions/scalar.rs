//! Functions on values: `coalesce()`.

use sqlparser::ast::Spanned;

use super::{Call, Function};
use crate::error::Result;
use crate::rules::expr::{Expr, Ty};
use crate::rules::lower::{Lowerer, Typed};

pub(super) const FUNCTIONS: &[Function] = &[Function {
    name: "coalesce",
    signature: "coalesce(x, y, ...) -> the first non-NULL argument",
    bare: false,
    lower: coalesce,
}];

fn coalesce(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    if call.positional.is_empty() || !call.named.is_empty() {
        return Err(l.err(call.span, "`coalesce` takes one or more arguments"));
    }
    let mut items = Vec::new();
    let mut ty = Ty::Null;
    for &x in &call.positional {
        let (e, t) = l.expr(x)?;
        if ty == Ty::Null {
            ty = t;
        } else if t != ty && t != Ty::Null {
            let (e2, ok) = match (ty, t) {
                (Ty::Money, Ty::Int) | (Ty::Money, Ty::Float) => {
                    match l.coerce_to_money(e.clone(), t) {
                        Some(m) => (m, true),
                        None => (e.clone(), false),
                    }
                }
                (Ty::Float, Ty::Int | Ty::Money) => (Lowerer::to_float(e.clone(), t), true),
                _ => (e.clone(), false),
            };
            if !ok {
                return Err(l.err(
                    x.span(),
                    format!("coalesce mixes {} and {}", ty.name(), t.name()),
                ));
            }
            items.push(e2);
            continue;
        }
        items.push(e);
    }
    Ok((Expr::Coalesce(items), ty))
}
