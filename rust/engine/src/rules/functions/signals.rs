//! Browsing signals (every event type other than purchase and refund):
//! `events()` and `last_event_at()`.

use super::{Call, Function};
use crate::error::Result;
use crate::rules::expr::{Expr, Ty};
use crate::rules::lower::{Lowerer, Typed};
use crate::rules::needs::{Accumulator, Measure, Source, Window};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "events",
        signature: "events('signal' [, within => | since => | between =>]) -> int",
        bare: false,
        lower: events,
    },
    Function {
        name: "last_event_at",
        signature: "last_event_at('signal') -> timestamp",
        bare: false,
        lower: last_event_at,
    },
];

fn events(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    if call.positional.len() != 1 {
        return Err(l.err(
            call.span,
            "`events` takes the signal name first: events('page_view', within => INTERVAL '30 days')",
        ));
    }
    let sig = l.string_arg(call.positional[0])?;
    let (source, window, within) = l.filters(&call.named, false, Some(sig))?;
    Ok(l.windowed(source, window, within, Measure::Count, Ty::Int))
}

fn last_event_at(l: &mut Lowerer<'_>, call: &Call<'_>) -> Result<Typed> {
    call.arity(1, l)?;
    let sig = l.string_arg(call.positional[0])?;
    let i = l.needs.accumulator(Accumulator {
        source: Source::Signal(sig),
        window: Window::All,
        measure: Measure::Last,
    });
    Ok((Expr::Acc(i, Ty::Ts), Ty::Ts))
}
