//! A row of the caller's own table committed in the same transaction as its ledger entry.
//!
//! Some events are the record of a change another table also holds (an issued token is a
//! `token.issued` entry and an `issued_tokens` row). Written apart, each costs its own durable
//! commit and the two writers contend for SQLite's one write lock. An [`Event`] carrying a
//! [`Row`] instead has the row inserted by the ledger writer inside the batch transaction: the
//! entry is committed if and only if its row is, with one disk sync for the whole batch.
//!
//! Invariants: the table and column names are `'static` identifiers checked here
//! (`[a-z_][a-z0-9_]*`), never caller data; values are always bound parameters. A row that
//! fails to insert fails its whole batch like any other database error (every waiter is told,
//! nothing of the batch is committed), so companion rows must be inserts that cannot
//! conflict, such as rows keyed by a fresh random id.
//!
//! [`Event`]: crate::entry::Event

use crate::error::{LedgerError, Result};

/// A bound value of a companion row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
    /// SQL NULL (of a text column).
    Null,
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Value {
        s.map_or(Value::Null, Value::Text)
    }
}

/// One row to insert: `INSERT INTO table (columns...) VALUES ($1, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    sql: String,
    values: Vec<Value>,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Row {
    /// A row of `table` with one value per column.
    pub fn new(
        table: &'static str,
        columns: &'static [&'static str],
        values: Vec<Value>,
    ) -> Result<Row> {
        if columns.is_empty() || columns.len() != values.len() {
            return Err(LedgerError::InvalidEvent(format!(
                "companion row of {table}: {} columns, {} values",
                columns.len(),
                values.len()
            )));
        }
        if let Some(bad) = std::iter::once(&table)
            .chain(columns)
            .find(|name| !is_identifier(name))
        {
            return Err(LedgerError::InvalidEvent(format!(
                "companion row: {bad:?} is not a plain identifier"
            )));
        }
        let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        Ok(Row {
            sql: format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                placeholders.join(", ")
            ),
            values,
        })
    }

    /// The statement, with `$n` placeholders (both backends).
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The values, in placeholder order.
    pub(crate) fn values(&self) -> &[Value] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_and_matching_values_make_a_row() {
        let row = Row::new("t_1", &["a", "b"], vec!["x".into(), 1i64.into()]).unwrap();
        assert_eq!(row.sql(), "INSERT INTO t_1 (a, b) VALUES ($1, $2)");
        assert!(Row::new("t", &["a"], vec![]).is_err());
        assert!(Row::new("t; DROP TABLE x", &["a"], vec![Value::Null]).is_err());
        assert!(Row::new("t", &["A"], vec![Value::Null]).is_err());
        assert!(Row::new("t", &[], vec![]).is_err());
    }
}
