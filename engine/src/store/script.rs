//! SQL literals for batch scripts. A journal batch is written as one SQL text with its values
//! inline, so the whole transaction travels to the database in one round trip (SQLite's
//! worker thread, PostgreSQL's simple-query protocol) instead of one per statement: on the
//! hot path the round trips, not the commit, were most of a step's cost.
//!
//! Only two kinds of value are ever written: integers, and text quoted by doubling `'`.
//! That quoting is exact for SQLite, and for PostgreSQL with `standard_conforming_strings`
//! on, which every PostgreSQL connection of the store sets at connect time. NUL, which
//! neither database stores in text, becomes U+FFFD.

use std::fmt::{self, Display, Formatter, Write};

/// A text literal: `'it''s'`.
pub(crate) struct Text<'a>(pub &'a str);

/// A text literal, or `NULL`.
pub(crate) struct OptText<'a>(pub Option<&'a str>);

/// An integer literal, or `NULL`.
pub(crate) struct OptInt(pub Option<i64>);

impl Display for Text<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('\'')?;
        let mut rest = self.0;
        while let Some(i) = rest.find(['\'', '\0']) {
            f.write_str(&rest[..i])?;
            f.write_str(if rest.as_bytes()[i] == b'\'' {
                "''"
            } else {
                "\u{FFFD}"
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)?;
        f.write_char('\'')
    }
}

impl Display for OptText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => Text(s).fmt(f),
            None => f.write_str("NULL"),
        }
    }
}

impl Display for OptInt {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(i) => write!(f, "{i}"),
            None => f.write_str("NULL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_doubles_quotes_and_keeps_everything_else() {
        assert_eq!(Text("plain").to_string(), "'plain'");
        assert_eq!(Text("it's").to_string(), "'it''s'");
        assert_eq!(Text("''").to_string(), "''''''");
        assert_eq!(Text(r"back\slash ü 🚀").to_string(), r"'back\slash ü 🚀'");
        assert_eq!(Text("a\0b").to_string(), "'a\u{FFFD}b'");
        assert_eq!(OptText(None).to_string(), "NULL");
        assert_eq!(OptInt(Some(-5)).to_string(), "-5");
        assert_eq!(OptInt(None).to_string(), "NULL");
    }
}
