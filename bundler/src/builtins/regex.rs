//! Regular expressions as OPA evaluates them. OPA compiles patterns with Go's RE2 syntax, where
//! the Perl classes `\d \w \s \b` are ASCII-only; Rust's `regex` (which regorus uses) makes them
//! Unicode-aware, so `regex.match("^\\d$", "٣")` would be true in sck and false in OPA.
//! [`go_pattern`] rewrites those classes to their ASCII meaning before regorus compiles the
//! pattern, and refuses escapes whose meaning differs with no rewrite (`\B`, negated classes
//! inside brackets, `\<`/`\>` which Go rejects). The `regex.*` built-ins delegate to regorus
//! with the rewritten pattern; `regex.template_match` is OPA's algorithm in full (regorus'
//! panics on some inputs).

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{delegate, scope, string_arg};

/// A Go (RE2) pattern rewritten for Rust's `regex` with Go's ASCII Perl classes.
pub fn go_pattern(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rewrite = match (next, in_class) {
                    ('d', false) => Some("[0-9]"),
                    ('d', true) => Some("0-9"),
                    ('D', false) => Some("[^0-9]"),
                    ('w', false) => Some("[0-9A-Za-z_]"),
                    ('w', true) => Some("0-9A-Za-z_"),
                    ('W', false) => Some("[^0-9A-Za-z_]"),
                    ('s', false) => Some("[\\t\\n\\f\\r ]"),
                    ('s', true) => Some("\\t\\n\\f\\r "),
                    ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                    ('b', false) => Some("(?-u:\\b)"),
                    ('D' | 'W' | 'S', true) | ('B', _) | ('<' | '>', _) => {
                        return Err(format!(
                            "\\{next} has no equivalent of Go's meaning in sck's regex engine"
                        ))
                    }
                    _ => None,
                };
                match rewrite {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `]` (after an optional `^`) is a literal in both syntaxes.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // A POSIX class such as [:alpha:] inside brackets.
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            // Rust treats `&&`, `--` and `~~` inside brackets as set operations; Go as literals.
            '&' | '-' | '~' if in_class && chars.peek() == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Calls regorus' `name` with the pattern at `index` rewritten by [`go_pattern`].
fn with_go_pattern(
    name: &'static str,
    index: usize,
    span: &Span,
    params: &[Ref<Expr>],
    args: &[Value],
    strict: bool,
) -> anyhow::Result<Value> {
    let mut args = args.to_vec();
    if let Some(Value::String(pattern)) = args.get(index) {
        let rewritten =
            go_pattern(pattern).map_err(|why| scope::refuse(format!("{name}: {why}")))?;
        args[index] = Value::from(rewritten);
    }
    delegate(name, span, params, &args, strict)
}

macro_rules! go_regex {
    ($fn:ident, $name:literal, $index:literal) => {
        pub fn $fn(
            span: &Span,
            params: &[Ref<Expr>],
            args: &[Value],
            strict: bool,
        ) -> anyhow::Result<Value> {
            with_go_pattern($name, $index, span, params, args, strict)
        }
    };
}

go_regex!(regex_match, "regex.match", 0);
go_regex!(regex_is_valid, "regex.is_valid", 0);
go_regex!(regex_split, "regex.split", 0);
go_regex!(regex_find_n, "regex.find_n", 0);
go_regex!(
    regex_find_all_string_submatch_n,
    "regex.find_all_string_submatch_n",
    0
);
go_regex!(regex_replace, "regex.replace", 1);

/// OPA's `delimiterIndices`: the byte ranges of the outermost delimited parts.
fn delimited(template: &[u8], start: u8, end: u8) -> Option<Vec<(usize, usize)>> {
    let mut level = 0usize;
    let mut open = 0;
    let mut spans = Vec::new();
    for (i, &b) in template.iter().enumerate() {
        if b == start {
            level += 1;
            if level == 1 {
                open = i;
            }
        } else if b == end {
            level = level.checked_sub(1)?;
            if level == 0 {
                spans.push((open, i + 1));
            }
        }
    }
    (level == 0).then_some(spans)
}

/// `regex.template_match(template, value, start, end)`, as OPA's `getRegexpTemplate`: literal
/// text is quoted, each outermost delimited part is a regex group, the whole is anchored.
pub fn template_match(_: &Span, _: &[Ref<Expr>], args: &[Value], _: bool) -> anyhow::Result<Value> {
    let name = "regex.template_match";
    let [template, value, start, end] = args else {
        anyhow::bail!("`{name}` expects 4 arguments");
    };
    let (template, value) = (string_arg(name, template)?, string_arg(name, value)?);
    let (start, end) = (string_arg(name, start)?, string_arg(name, end)?);
    if start.len() != 1 || end.len() != 1 {
        anyhow::bail!("{name}: delimiters must be exactly one byte long");
    }
    let (start, end) = (start.as_bytes()[0], end.as_bytes()[0]);
    let Some(spans) = delimited(template.as_bytes(), start, end) else {
        anyhow::bail!("{name}: unbalanced delimiters in {template:?}");
    };
    scope::charge(name, template.len() as u64 * 64)?;
    let mut pattern = String::from("^");
    let mut last = 0;
    for (open, close) in spans {
        // Single-byte ASCII delimiters keep these slices on character boundaries unless the
        // delimiter is not ASCII, which OPA allows only as a byte; refuse that case.
        let (Some(raw), Some(group)) =
            (template.get(last..open), template.get(open + 1..close - 1))
        else {
            return Err(scope::refuse(format!(
                "{name}: a delimiter splits a character"
            )));
        };
        let group = go_pattern(group).map_err(|why| scope::refuse(format!("{name}: {why}")))?;
        pattern.push_str(&regex::escape(raw));
        pattern.push('(');
        pattern.push_str(&group);
        pattern.push(')');
        last = close;
    }
    let Some(rest) = template.get(last..) else {
        return Err(scope::refuse(format!(
            "{name}: a delimiter splits a character"
        )));
    };
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    let re = regex::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok(Value::from(re.is_match(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_become_ascii() {
        assert_eq!(go_pattern(r"^\d+$").unwrap(), "^[0-9]+$");
        assert_eq!(go_pattern(r"[\w.]").unwrap(), "[0-9A-Za-z_.]");
        assert_eq!(go_pattern(r"\\d").unwrap(), r"\\d");
        assert_eq!(go_pattern(r"[]a]").unwrap(), r"[\]a]");
        assert_eq!(go_pattern(r"[[:alpha:]\d]").unwrap(), "[[:alpha:]0-9]");
        assert_eq!(go_pattern(r"[a&&b]").unwrap(), r"[a\&&b]");
        assert!(go_pattern(r"\B").is_err());
        assert!(go_pattern(r"[\D]").is_err());
    }

    fn template(t: &str, v: &str) -> Value {
        super::super::call_plain(
            template_match,
            &[
                Value::from(t),
                Value::from(v),
                Value::from("{"),
                Value::from("}"),
            ],
        )
        .unwrap()
    }

    /// Answers recorded from OPA 0.60 and 1.9; regorus 0.14.1 panics on the first.
    #[test]
    fn template_match_matches_opa() {
        assert_eq!(template("urn:foo:{.*}", "a1b2"), Value::from(false));
        assert_eq!(template("urn:foo:{.*}", "urn:foo:bar"), Value::from(true));
        assert_eq!(
            template("urn:foo.bar:{[0-9]{2}}", "urn:foo.bar:42"),
            Value::from(true)
        );
        assert_eq!(
            template("urn:foo.bar:{[0-9]{2}}", "urn:fooXbar:42"),
            Value::from(false)
        );
        assert_eq!(template("{\\d}", "٣"), Value::from(false));
    }
}
