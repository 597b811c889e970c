//! Profile traits: the latest value of each declared trait, per customer.

use crate::rules::expr::Value;
use crate::rules::ruleset::TraitType;

/// One column per declared trait.
#[derive(Debug, Clone)]
pub struct Traits {
    /// `(name, type)` in rule order.
    pub decl: Vec<(String, TraitType)>,
    /// `values[t][customer]`.
    pub values: Vec<Vec<Value>>,
}

impl Traits {
    /// Empty columns for the declared traits.
    pub fn new(decl: &[(String, TraitType)]) -> Self {
        Traits {
            decl: decl.to_vec(),
            values: vec![Vec::new(); decl.len()],
        }
    }

    /// Grows to `n` customers.
    pub fn grow(&mut self, n: usize) {
        for v in &mut self.values {
            if v.len() < n {
                v.resize(n, Value::Null);
            }
        }
    }

    /// Index of a trait by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.decl.iter().position(|(n, _)| n == name)
    }
}
