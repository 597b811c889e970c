//! References to other nodes: `in_segment()` and `stage()`. Each adds a
//! dependency, so the referenced node is evaluated first.

use super::{Call, Function};
use crate::error::Result;
use crate::rules::diagnostics::did_you_mean;
use crate::rules::expr::{Expr, Ty};
use crate::rules::lower::{Lowerer, Typed};
use sqlparser::ast::Spanned;

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "in_segment",
        signature: "in_segment('segment') -> bool",
        bare: false,
        lower: reference,
    },
    Function {
        name: "stage",
        signature: "stage('lifecycle') -> string (the stage name, NULL outside every stage)",
        bare: false,
        lower: reference,
    },
];

fn reference(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    call.arity(1, l)?;
    let arg = call.positional[0];
    let target = l.string_arg(arg)?;
    let want_segment = call.name == "in_segment";
    match l.names.get(&target) {
        Some(&(idx, is_seg)) if is_seg == want_segment => {
            l.deps.push(idx);
            if want_segment {
                Ok((Expr::InSegment(idx), Ty::Bool))
            } else {
                Ok((Expr::Stage(idx), Ty::Str))
            }
        }
        Some(_) => Err(l.err(
            arg.span(),
            if want_segment {
                format!("`{target}` is a lifecycle; use stage('{target}') = 'stage_name'")
            } else {
                format!("`{target}` is a segment; use in_segment('{target}')")
            },
        )),
        None => {
            let known: Vec<&str> = l
                .names
                .iter()
                .filter(|(_, (_, s))| *s == want_segment)
                .map(|(k, _)| k.as_str())
                .collect();
            let hint = did_you_mean(&target, known.iter().copied());
            Err(l.err(
                arg.span(),
                format!(
                    "unknown {} `{target}`{hint}",
                    if want_segment { "segment" } else { "lifecycle" }
                ),
            ))
        }
    }
}
