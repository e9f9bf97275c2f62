//! Regular expressions as OPA evaluates them. OPA compiles patterns with Go's RE2 syntax, where
//! the Perl classes `\d \w \s \b` are ASCII-only; Rust's `regex` (which regorus uses) makes them
//! Unicode-aware, so `regex.match("^\\d$", "٣")` would be true in sck and false in OPA.
//! [`go_pattern`] rewrites those classes to their ASCII meaning before regorus compiles the
//! pattern, and refuses escapes whose meaning differs with no rewrite (`\B`, negated classes
//! inside brackets, `\<`/`\>` which Go rejects). The `regex.*` built-ins delegate to regorus
//! with the rewritten pattern; `regex.template_match` is OPA's algorithm in full (regorus'
//! panics on some inputs).
//!
//! Syntax where the two engines differ: Go reads a `{` that does not start a repetition
//! (`{"a":1}`, `x{`, `a{,3}`) as a literal and `\Q...\E` as quoted text, where Rust rejects
//! both: [`go_pattern`] escapes them. Go rejects what Rust accepts — a repetition of a
//! repetition (`a**`, `a++`, `x{1}{2}`), a count beyond 1000, flags other than `imsU`
//! ([`go_rejects`]): `regex.is_valid` is false for those and the other built-ins stop the
//! evaluation (OPA answers an error). Nested counts whose product passes 1000 (Go may reject
//! them as too large) and `(?<name>` (OPA 0.60 rejects it, 1.x accepts) are refused.

use regorus::unstable::{Expr, Ref, Span};
use regorus::Value;

use super::{delegate, scope, string_arg};

/// The `{n}`, `{n,}` or `{n,m}` repetition at the start of `rest` (just after a `{`), as
/// Go reads one: its length in bytes (with the closing `}`) and its largest count.
fn repetition(rest: &str) -> Option<(usize, u64)> {
    let end = rest.find('}')?;
    let body = &rest[..end];
    let (min, max) = match body.split_once(',') {
        Some((min, max)) => (min, Some(max)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(min) || max.is_some_and(|m| !m.is_empty() && !digits(m)) {
        return None;
    }
    let count = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    let largest = match max {
        Some("") | None => count(min),
        Some(m) => count(m).max(count(min)),
    };
    Some((end + 1, largest))
}

/// Why Go's syntax rejects a pattern Rust's accepts, if it does.
pub fn go_rejects(pattern: &str) -> Option<String> {
    let bytes = pattern.as_bytes();
    let (mut i, mut in_class) = (0, false);
    // After a repetition operator: 1, and 2 once its lazy `?` is read.
    let mut after_repetition = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let repeated = after_repetition;
        after_repetition = 0;
        match c {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            _ if in_class => {}
            b'*' | b'+' | b'?' | b'{' => {
                let counted = if c == b'{' {
                    match repetition(&pattern[i + 1..]) {
                        Some((len, largest)) => {
                            if largest > 1000 {
                                return Some(format!("a repeat count above 1000 at byte {i}"));
                            }
                            i += len;
                            true
                        }
                        None => {
                            i += 1;
                            continue;
                        }
                    }
                } else {
                    false
                };
                match (repeated, c) {
                    (1, b'?') if !counted => after_repetition = 2,
                    (1 | 2, _) => return Some(format!("a repetition of a repetition at byte {i}")),
                    _ => after_repetition = 1,
                }
            }
            b'(' if bytes.get(i + 1) == Some(&b'?') => {
                let flags: &[u8] = &bytes[i + 2..];
                let end = flags
                    .iter()
                    .position(|b| matches!(b, b')' | b':'))
                    .unwrap_or(flags.len());
                let flags = &flags[..end];
                if !flags.starts_with(b"P<")
                    && !flags.starts_with(b"<")
                    && flags
                        .iter()
                        .any(|b| !matches!(b, b'i' | b'm' | b's' | b'U' | b'-'))
                {
                    return Some(format!("the flags `{}`", String::from_utf8_lossy(flags)));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The product of the counts of nested and sequential counted repetitions, past which Go may
/// reject a pattern as too large.
fn counted_product(pattern: &str) -> u64 {
    let mut product = 1u64;
    let mut rest = pattern;
    while let Some(at) = rest.find('{') {
        let escaped = rest[..at].ends_with('\\');
        rest = &rest[at + 1..];
        if let (false, Some((len, largest))) = (escaped, repetition(rest)) {
            product = product.saturating_mul(largest.max(1));
            rest = &rest[len..];
        }
    }
    product
}

/// A Go (RE2) pattern rewritten for Rust's `regex` with Go's ASCII Perl classes.
pub fn go_pattern(pattern: &str) -> Result<String, String> {
    if pattern.contains("(?<") {
        return Err("(?<name> groups (OPA 0.60 rejects them, OPA 1.x accepts them)".into());
    }
    if counted_product(pattern) > 1000 {
        return Err(
            "counted repetitions whose counts multiply past 1000 (Go may reject them as too large)"
                .into(),
        );
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if !in_class => {
                let rest: String = chars.clone().collect();
                if repetition(&rest).is_some() {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
            }
            '\\' if !in_class && chars.peek() == Some(&'Q') => {
                chars.next();
                let mut quoted = String::new();
                while let Some(q) = chars.next() {
                    if q == '\\' && chars.peek() == Some(&'E') {
                        chars.next();
                        break;
                    }
                    quoted.push(q);
                }
                out.push_str(&::regex::escape(&quoted));
            }
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
                        // `\p{Greek}`, `\x{10FFFF}`: the braces belong to the escape.
                        if matches!(next, 'p' | 'P' | 'x') && chars.peek() == Some(&'{') {
                            for d in chars.by_ref() {
                                out.push(d);
                                if d == '}' {
                                    break;
                                }
                            }
                        }
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
        if let Some(why) = go_rejects(pattern) {
            if name == "regex.is_valid" {
                return Ok(Value::Bool(false));
            }
            return Err(scope::refuse(format!(
                "{name}: the pattern is invalid in Go's syntax ({why}), an error in OPA"
            )));
        }
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

    /// `regex.is_valid` of each pattern, recorded from OPA 0.60 and 1.9.
    #[test]
    fn syntax_is_gos() {
        let valid = |p: &str| {
            super::super::call_plain(regex_is_valid, &[Value::from(p)]).unwrap()
                == Value::Bool(true)
        };
        for accepted in [
            "{\"a\":1}",
            "x{",
            "a{,3}",
            "{",
            "}",
            "a{1",
            r"\Qa.b\E",
            r"a\z",
            r"\pN",
            "[[:alpha:]]",
            "(?U)a+",
            "a{1000}",
            "(?P<n>a)",
            "(?i)a",
            "a*?",
            "a??",
            "a{2}?",
            "(?s).*",
            "(?m)^a$",
            "(?i:a)",
            "(?-s)a",
            r"\p{Greek}",
            r"\x{10FFFF}",
            r"[\p{L}]",
        ] {
            assert!(valid(accepted), "{accepted}");
        }
        for rejected in [
            "a{1001}", "a{2,1}", "a**", "a++", "x{1}{2}", "a???", "a*{2}", "(?x)a", "\\C",
        ] {
            assert!(!valid(rejected), "{rejected}");
        }
        assert_eq!(go_pattern("{\"a\":1}").unwrap(), "\\{\"a\":1}");
        assert_eq!(go_pattern(r"\Qa.b\Ec").unwrap(), r"a\.bc");
        let matches = |p: &str, s: &str| {
            super::super::call_plain(regex_match, &[Value::from(p), Value::from(s)]).unwrap()
        };
        assert_eq!(matches("{\"a\":1}", "{\"a\":1}"), Value::Bool(true));
        assert_eq!(matches(r"\Qa.b\E", "axb"), Value::Bool(false));
        assert_eq!(matches(r"\Qa.b\E", "a.b"), Value::Bool(true));
        // Refused: the majors differ, or Go's size limit.
        for refused in ["(?<n>a)", "(a{500}){3}"] {
            let ended = scope::run(1 << 20, || {
                super::super::call_plain(regex_match, &[Value::from(refused), Value::from("a")])
            });
            assert!(
                matches!(
                    ended,
                    scope::Ended::Returned(Err(_), Some(scope::Stop::Unsupported(_)))
                ),
                "{refused}"
            );
        }
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
