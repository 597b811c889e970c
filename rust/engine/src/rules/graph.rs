//! The graph that `in_segment` and `stage` references make between nodes:
//! an evaluation order with dependencies first, refusing cycles, and time
//! dependence carried along the references.

use super::compiled::Node;
use crate::error::{EngineError, Result};

/// Evaluation order of `nodes`, every node after the nodes it reads.
pub fn evaluation_order(nodes: &[Node]) -> Result<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        nodes: &[Node],
        mark: &mut [u8],
        order: &mut Vec<usize>,
        stack: &mut Vec<usize>,
    ) -> Result<()> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[start..]
                    .iter()
                    .map(|&s| nodes[s].name.as_str())
                    .collect();
                cycle.push(&nodes[i].name);
                return Err(EngineError::rule_plain(format!(
                    "segments reference each other in a cycle: {}",
                    cycle.join(" -> ")
                )));
            }
            _ => {}
        }
        mark[i] = 1;
        stack.push(i);
        for &d in &nodes[i].deps {
            visit(d, nodes, mark, order, stack)?;
        }
        stack.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..nodes.len() {
        visit(i, nodes, &mut mark, &mut order, &mut stack)?;
    }
    Ok(order)
}

/// Marks a node time dependent when a node it reads is: a segment over
/// `in_segment('dormant')` can change with time alone.
pub fn propagate_time_dependence(nodes: &mut [Node], order: &[usize]) {
    for &i in order {
        let inherited = nodes[i].deps.iter().any(|&d| nodes[d].time_dependent);
        nodes[i].time_dependent |= inherited;
    }
}
