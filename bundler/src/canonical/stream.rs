//! OPA's canonical form of a JSON text, written straight from its tokens without building a tree.
//!
//! The writer walks the text once with `jiter` and appends canonical bytes to a buffer. An
//! object whose keys arrive out of order (or twice) is re-ordered in place when it closes, so
//! only objects that need it are ever held twice. When the output is a digest, the buffer is
//! handed to the hasher in pieces as soon as no open object can still be re-ordered, so hashing
//! needs memory for the largest out-of-order object, not for the document; if an object that
//! was already partly hashed turns out to be out of order, hashing starts over with the whole
//! canonical form collected first. Invariant: every mode produces, or hashes, exactly the bytes
//! of [`Json::to_canonical_bytes`](super::Json::to_canonical_bytes) for the same text, and
//! accepts exactly the texts [`Json::parse`](super::Json::parse) accepts.

use std::ops::Range;

use jiter::{Jiter, JiterError, Peek};
use sha2::digest::{Digest, Output};

use super::{plain_decimal, write_go_string, JsonError, MAX_DEPTH};

/// How the writer spells numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// As the source wrote them (the form OPA hashes).
    AsWritten,
    /// As plain decimals (the form sck writes into the bundles it builds).
    Plain,
}

/// Bytes collected before the digest writer hands them to the hasher.
const FLUSH_AT: usize = 64 * 1024;

/// Appends the canonical form of the JSON text `text` to `out`. On error `out` is left as it was.
pub fn write_canonical(text: &[u8], numbers: Numbers, out: &mut Vec<u8>) -> Result<(), JsonError> {
    let before = out.len();
    let mut writer = Writer::new(Target::Collect, numbers);
    writer.buf = std::mem::take(out);
    writer.flushed = 0;
    let result = writer.run(text);
    *out = writer.buf;
    match result {
        Ok(()) => Ok(()),
        Err(stop) => {
            out.truncate(before);
            Err(stop.into_json())
        }
    }
}

/// Checks that `text` is one JSON value that [`Json::parse`](super::Json::parse) accepts,
/// without keeping anything.
pub fn validate(text: &[u8]) -> Result<(), JsonError> {
    Writer::new(Target::Discard, Numbers::AsWritten)
        .run(text)
        .map_err(Stop::into_json)
}

/// Moves `jiter` past the value `peek` announced, checking it as [`validate`] does.
pub(crate) fn skip_value(jiter: &mut Jiter<'_>, peek: Peek) -> Result<(), JsonError> {
    Writer::new(Target::Discard, Numbers::AsWritten)
        .value(jiter, peek, 0)
        .map_err(|fail| fail.describe(jiter).into_json())
}

/// The digest of the canonical form of `text` (numbers as written), streamed.
pub fn canonical_digest<D: Digest>(text: &[u8]) -> Result<Output<D>, JsonError> {
    digest_flushing_at::<D>(text, FLUSH_AT)
}

fn digest_flushing_at<D: Digest>(text: &[u8], flush_at: usize) -> Result<Output<D>, JsonError> {
    let mut hasher = D::new();
    let mut sink = |chunk: &[u8]| hasher.update(chunk);
    let streamed = Writer::new(
        Target::Stream {
            sink: &mut sink,
            flush_at,
        },
        Numbers::AsWritten,
    )
    .run(text);
    match streamed {
        Ok(()) => Ok(hasher.finalize()),
        Err(Stop::Restart) => {
            let mut all = Vec::new();
            write_canonical(text, Numbers::AsWritten, &mut all)?;
            Ok(D::digest(&all))
        }
        Err(stop) => Err(stop.into_json()),
    }
}

/// Where the canonical bytes go.
enum Target<'s> {
    /// Kept in the buffer (the caller's output).
    Collect,
    /// Handed to `sink` in pieces once no re-ordering can touch them.
    Stream {
        sink: &'s mut dyn FnMut(&[u8]),
        flush_at: usize,
    },
    /// Dropped: the walk only validates.
    Discard,
}

/// An object being written.
struct Frame {
    /// Absolute offset of its first member (just after `{`).
    start: usize,
    /// Absolute offsets of its members, while it can still be re-ordered.
    members: Vec<usize>,
    last_key: String,
    /// A key arrived out of order or twice: re-order when the object closes.
    unsorted: bool,
    /// Part of it was already handed to the sink: it can no longer be re-ordered.
    pinned: bool,
}

/// Why a walk stopped.
enum Fail {
    Syntax(JiterError),
    TooDeep,
    Number(JsonError),
    /// An object already partly hashed is out of order.
    Restart,
}

impl Fail {
    fn describe(self, jiter: &Jiter<'_>) -> Stop {
        match self {
            Fail::Syntax(e) => Stop::Json(JsonError::Syntax(e.description(jiter))),
            Fail::TooDeep => Stop::Json(JsonError::TooDeep),
            Fail::Number(e) => Stop::Json(e),
            Fail::Restart => Stop::Restart,
        }
    }
}

impl From<JiterError> for Fail {
    fn from(e: JiterError) -> Self {
        Fail::Syntax(e)
    }
}

/// A walk's failure, described.
enum Stop {
    Json(JsonError),
    Restart,
}

impl Stop {
    fn into_json(self) -> JsonError {
        match self {
            Stop::Json(e) => e,
            // Only the streaming digest restarts, and it handles that itself.
            Stop::Restart => JsonError::Syntax("internal: unexpected restart".into()),
        }
    }
}

struct Writer<'s> {
    buf: Vec<u8>,
    /// Bytes already handed to the sink: the absolute offset of `buf[0]`.
    flushed: usize,
    target: Target<'s>,
    numbers: Numbers,
    open: Vec<Frame>,
    /// Closed frames kept for their allocations (one object after another reuses them).
    spare: Vec<Frame>,
}

impl<'s> Writer<'s> {
    fn new(target: Target<'s>, numbers: Numbers) -> Self {
        Writer {
            buf: Vec::new(),
            flushed: 0,
            target,
            numbers,
            open: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Writes the canonical form of the whole text.
    fn run(&mut self, text: &[u8]) -> Result<(), Stop> {
        let mut jiter = Jiter::new(text);
        let walked = match jiter.peek() {
            Ok(peek) => self
                .value(&mut jiter, peek, 0)
                .and_then(|()| jiter.finish().map_err(Fail::from)),
            Err(e) => Err(Fail::from(e)),
        };
        match walked {
            Ok(()) => {
                if let Target::Stream { sink, .. } = &mut self.target {
                    sink(&self.buf);
                    self.buf.clear();
                }
                Ok(())
            }
            Err(fail) => Err(fail.describe(&jiter)),
        }
    }

    /// True when the walk only validates (strings are decoded, not written).
    fn discards(&self) -> bool {
        matches!(self.target, Target::Discard)
    }

    /// The absolute offset of the next byte written.
    fn position(&self) -> usize {
        self.flushed + self.buf.len()
    }

    fn value(&mut self, jiter: &mut Jiter<'_>, peek: Peek, depth: usize) -> Result<(), Fail> {
        if depth >= MAX_DEPTH {
            return Err(Fail::TooDeep);
        }
        match peek {
            Peek::Null => {
                jiter.known_null()?;
                self.buf.extend_from_slice(b"null");
            }
            Peek::True | Peek::False => {
                let literal: &[u8] = if jiter.known_bool(peek)? {
                    b"true"
                } else {
                    b"false"
                };
                self.buf.extend_from_slice(literal);
            }
            Peek::String => {
                let s = jiter.known_str()?;
                if !self.discards() {
                    write_go_string(s, &mut self.buf);
                }
            }
            Peek::Array => {
                self.buf.push(b'[');
                let mut next = jiter.known_array()?;
                let mut first = true;
                while let Some(peek) = next {
                    if !first {
                        self.buf.push(b',');
                    }
                    first = false;
                    self.value(jiter, peek, depth + 1)?;
                    self.maybe_flush();
                    next = jiter.array_step()?;
                }
                self.buf.push(b']');
            }
            Peek::Object => self.object(jiter, depth)?,
            _ => {
                let literal = jiter.known_number_bytes(peek)?;
                match self.numbers {
                    Numbers::AsWritten => self.buf.extend_from_slice(literal),
                    Numbers::Plain => {
                        // Only JSON number grammar gets here, which is ASCII.
                        let plain = plain_decimal(&String::from_utf8_lossy(literal))
                            .map_err(Fail::Number)?;
                        self.buf.extend_from_slice(plain.as_bytes());
                    }
                }
            }
        }
        Ok(())
    }

    fn object(&mut self, jiter: &mut Jiter<'_>, depth: usize) -> Result<(), Fail> {
        let track_order = !self.discards();
        self.buf.push(b'{');
        let frame = self.open.len();
        let start = self.position();
        let mut f = self.spare.pop().unwrap_or_else(|| Frame {
            start,
            members: Vec::new(),
            last_key: String::new(),
            unsorted: false,
            pinned: false,
        });
        f.start = start;
        f.members.clear();
        f.last_key.clear();
        f.unsorted = false;
        f.pinned = false;
        self.open.push(f);
        let mut key = jiter.known_object()?;
        let mut first = true;
        while let Some(k) = key {
            if !first {
                self.buf.push(b',');
            }
            if track_order {
                let at = self.position();
                let f = &mut self.open[frame];
                if !first && k <= f.last_key.as_str() {
                    if f.pinned {
                        return Err(Fail::Restart);
                    }
                    f.unsorted = true;
                }
                f.last_key.clear();
                f.last_key.push_str(k);
                if !f.pinned {
                    f.members.push(at);
                }
            }
            first = false;
            if track_order {
                write_go_string(k, &mut self.buf);
            }
            self.buf.push(b':');
            let peek = jiter.peek()?;
            self.value(jiter, peek, depth + 1)?;
            self.maybe_flush();
            key = jiter.next_key()?;
        }
        if let Some(f) = self.open.pop() {
            if f.unsorted {
                self.reorder(&f)?;
            }
            self.spare.push(f);
        }
        self.buf.push(b'}');
        Ok(())
    }

    /// Rewrites the members of the (still buffered) object `f` sorted by key, a later
    /// duplicate replacing an earlier one as Go's decoder does.
    fn reorder(&mut self, f: &Frame) -> Result<(), Fail> {
        let body = f.start - self.flushed;
        let end = self.buf.len();
        let mut members: Vec<(String, Range<usize>)> = Vec::with_capacity(f.members.len());
        for (i, &start) in f.members.iter().enumerate() {
            let start = start - self.flushed;
            // Up to the comma before the next member.
            let stop = f
                .members
                .get(i + 1)
                .map_or(end, |next| next - self.flushed - 1);
            let key = Jiter::new(&self.buf[start..stop]).next_str()?.to_owned();
            members.push((key, start - body..stop - body));
        }
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let old = self.buf.split_off(body);
        let mut first = true;
        for (i, (key, span)) in members.iter().enumerate() {
            if members.get(i + 1).is_some_and(|(next, _)| next == key) {
                continue;
            }
            if !first {
                self.buf.push(b',');
            }
            first = false;
            self.buf.extend_from_slice(&old[span.clone()]);
        }
        Ok(())
    }

    /// Hands what no open object can still re-order to the sink, once enough is buffered.
    fn maybe_flush(&mut self) {
        let position = self.position();
        match &mut self.target {
            Target::Collect => {}
            Target::Discard => {
                if self.buf.len() >= FLUSH_AT {
                    self.flushed = position;
                    self.buf.clear();
                }
            }
            Target::Stream { sink, flush_at } => {
                if self.buf.len() < *flush_at {
                    return;
                }
                // Not past the first object that will be re-ordered.
                let limit = self
                    .open
                    .iter()
                    .find(|f| f.unsorted)
                    .map_or(position, |f| f.start);
                if limit <= self.flushed {
                    return;
                }
                let n = limit - self.flushed;
                sink(&self.buf[..n]);
                self.buf.drain(..n);
                self.flushed = limit;
                for f in self.open.iter_mut().filter(|f| f.start < limit) {
                    f.pinned = true;
                    f.members = Vec::new();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::Json;
    use proptest::prelude::*;

    fn tree_form(text: &[u8]) -> Result<Vec<u8>, JsonError> {
        Json::parse(text).map(|j| j.to_canonical_bytes())
    }

    fn streamed(text: &[u8], numbers: Numbers) -> Result<Vec<u8>, JsonError> {
        let mut out = b"prefix".to_vec();
        write_canonical(text, numbers, &mut out)?;
        Ok(out.split_off(6))
    }

    #[test]
    fn reorders_and_deduplicates_like_the_tree() {
        for text in [
            &br#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":2},"a":{"x":"\u2028"}}"#[..],
            br#" [ {"k" : 1e3 , "j":-0}, "s\n", true, null ] "#,
            br#"{"a":1,"a":2}"#,
            b"{}",
        ] {
            assert_eq!(streamed(text, Numbers::AsWritten), tree_form(text));
            let digest = canonical_digest::<sha2::Sha256>(text).unwrap();
            assert_eq!(digest, sha2::Sha256::digest(tree_form(text).unwrap()));
        }
    }

    #[test]
    fn plain_numbers_and_errors() {
        assert_eq!(
            streamed(br#"{"b":1.50,"a":1e3}"#, Numbers::Plain).unwrap(),
            br#"{"a":1000,"b":1.5}"#
        );
        assert!(matches!(
            streamed(b"[1e999]", Numbers::Plain),
            Err(JsonError::UnrepresentableNumber(_))
        ));
        let mut out = b"kept".to_vec();
        assert!(write_canonical(b"{\"a\":", Numbers::AsWritten, &mut out).is_err());
        assert_eq!(out, b"kept");
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(validate(deep.as_bytes()), Err(JsonError::TooDeep));
        assert!(validate(b"[1] x").is_err());
    }

    /// A document whose big outer object is in order but whose last member is not: the
    /// streaming digest has already hashed part of it and must start over.
    #[test]
    fn digest_restarts_when_a_partly_hashed_object_is_out_of_order() {
        let mut text = String::from("{");
        for i in 0..50 {
            text.push_str(&format!("\"k{i:03}\":\"{}\",", "v".repeat(40)));
        }
        text.push_str("\"a\":0}");
        let want = sha2::Sha256::digest(tree_form(text.as_bytes()).unwrap());
        assert_eq!(
            digest_flushing_at::<sha2::Sha256>(text.as_bytes(), 64).unwrap(),
            want
        );
    }

    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            "-?[0-9]{1,3}(\\.[0-9]{1,2})?(e-?[0-9])?",
            "\"[a-c\\\\\"\u{2028}\\n]{0,3}\"",
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-d]{0,2}", inner), 0..6).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{ {} }}", members.join(", "))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_mode_agrees_with_the_tree(text in json_text(), flush_at in 1usize..200) {
            let text = text.as_bytes();
            let tree = tree_form(text);
            prop_assert_eq!(streamed(text, Numbers::AsWritten), tree.clone());
            prop_assert_eq!(validate(text).is_ok(), tree.is_ok());
            let digest = digest_flushing_at::<sha2::Sha256>(text, flush_at);
            prop_assert_eq!(digest.ok(), tree.ok().map(sha2::Sha256::digest));
        }
    }
}
