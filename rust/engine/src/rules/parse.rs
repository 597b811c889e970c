//! Parses one rule's SQL text (with `sqlparser`) into an expression tree,
//! refusing text too long or too deep to compile safely and pointing syntax
//! errors at their line and column.

use sqlparser::ast as sql;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use super::diagnostics::{parser_location, rule_error};
use crate::error::{EngineError, Result};

/// Longest accepted rule text; longer input is refused before parsing.
const MAX_RULE_LEN: usize = 64 * 1024;
/// Most tokens in one rule (keeps compiled expressions shallow).
const MAX_RULE_TOKENS: usize = 2_000;

/// Parses the rule `source` of node `label` as one SQL expression.
pub fn parse_rule(label: &str, source: &str) -> Result<sql::Expr> {
    if source.trim().is_empty() {
        return Err(EngineError::rule_plain(format!(
            "rule `{}` is empty",
            label
        )));
    }
    if source.len() > MAX_RULE_LEN {
        return Err(EngineError::rule_plain(format!(
            "rule `{}` is longer than {MAX_RULE_LEN} bytes",
            label
        )));
    }
    let dialect = GenericDialect {};
    // Long operator chains parse fine but nest deeply once compiled; cap the
    // size so that no rule text can exhaust the stack.
    if let Ok(tokens) = Tokenizer::new(&dialect, source).tokenize() {
        let n = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .count();
        if n > MAX_RULE_TOKENS {
            return Err(EngineError::rule_plain(format!(
            "rule `{}` has {n} tokens, more than the {MAX_RULE_TOKENS} allowed; split it into segments combined with in_segment()",
            label
        )));
        }
    }
    let parsed = Parser::new(&dialect)
        .with_recursion_limit(64)
        .try_with_sql(source)
        .and_then(|mut p| {
            let e = p.parse_expr()?;
            let next = p.peek_token();
            if next.token != Token::EOF {
                return Err(ParserError::ParserError(format!(
                    "unexpected `{}` after the end of the expression at Line: {}, Column: {}",
                    next.token, next.span.start.line, next.span.start.column
                )));
            }
            Ok(e)
        });
    let ast = match parsed {
        Ok(e) => e,
        Err(ParserError::RecursionLimitExceeded) => {
            return Err(EngineError::rule_plain(format!(
                "rule `{}` is nested too deeply",
                label
            )))
        }
        Err(ParserError::TokenizerError(m)) | Err(ParserError::ParserError(m)) => {
            let (line, column) = parser_location(&m);
            let msg = m.split(" at Line:").next().unwrap_or(&m).to_string();
            return Err(rule_error(
                label,
                source,
                line,
                column,
                1,
                &format!("syntax error: {msg}"),
            ));
        }
    };
    Ok(ast)
}
