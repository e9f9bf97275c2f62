//! Server-sent events (the `text/event-stream` format of the HTML standard) as MCP's
//! Streamable HTTP transport uses them: an incremental splitter that cuts a byte stream into
//! whole events as they arrive, so a relay can pass each on (or rewrite one) without
//! waiting for the stream to end.
//!
//! Invariant: bytes go out exactly as they came in, event by event; [`Splitter::push`] keeps
//! at most one incomplete event, and refuses one longer than its bound.

/// One complete event: its bytes as received (including the blank line that ends it) and its
/// `data` field (the `data:` lines joined by `\n`), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub raw: Vec<u8>,
    pub data: Option<String>,
}

impl Event {
    /// An event carrying `data` (a single line: JSON has no raw newlines).
    pub fn with_data(data: &str) -> Event {
        Event {
            raw: format!("event: message\ndata: {data}\n\n").into_bytes(),
            data: Some(data.to_owned()),
        }
    }
}

impl Event {
    /// This event's bytes with its data replaced by `data` (one line), every other field
    /// (`id`, `event`, `retry`, comments) kept, so resumption by `Last-Event-ID` still works.
    pub fn with_replaced_data(&self, data: &str) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.raw);
        let mut out = String::new();
        for line in text.lines() {
            if !line.is_empty() && line != "data" && !line.starts_with("data:") {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("data: ");
        out.push_str(data);
        out.push_str("\n\n");
        out.into_bytes()
    }
}

/// An event grew past the splitter's bound before it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTooLarge(pub usize);

/// Cuts a stream into events.
#[derive(Debug)]
pub struct Splitter {
    pending: Vec<u8>,
    max_event_bytes: usize,
}

impl Splitter {
    pub fn new(max_event_bytes: usize) -> Splitter {
        Splitter {
            pending: Vec::new(),
            max_event_bytes,
        }
    }

    /// Adds `bytes` and returns every event they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.pending) {
            let raw: Vec<u8> = self.pending.drain(..end).collect();
            let data = data_of(&raw);
            events.push(Event { raw, data });
        }
        if self.pending.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(events)
    }

    /// What is left when the stream ends (an unterminated last event), passed on as is.
    pub fn finish(self) -> Vec<u8> {
        self.pending
    }
}

/// The end (exclusive) of the first complete event: after a blank line, where lines end
/// with `\r\n`, `\n` or `\r`.
fn event_end(bytes: &[u8]) -> Option<usize> {
    let mut previous_line_empty = true;
    let mut line_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => i + 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            // A lone `\r` at the end may be the first half of `\r\n`: wait for more.
            b'\r' if i + 1 == bytes.len() => return None,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        let empty = i == line_start;
        if empty && !previous_line_empty {
            return Some(end);
        }
        previous_line_empty = empty;
        line_start = end;
        i = end;
    }
    None
}

/// The `data` field of one event's bytes.
fn data_of(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']) {
        let value = match line.strip_prefix("data") {
            Some("") => "",
            Some(rest) => match rest.strip_prefix(':') {
                Some(value) => value.strip_prefix(' ').unwrap_or(value),
                None => continue,
            },
            None => continue,
        };
        match &mut data {
            Some(d) => {
                d.push('\n');
                d.push_str(value);
            }
            None => data = Some(value.to_owned()),
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn events_are_cut_at_blank_lines_whatever_the_line_ends() {
        let stream =
            b"event: message\ndata: {\"a\":1}\n\n: comment\r\n\r\ndata: x\rdata: y\r\rdata: z\n\n";
        let mut s = Splitter::new(1024);
        let events = s.push(stream).unwrap();
        let data: Vec<_> = events.iter().map(|e| e.data.clone()).collect();
        assert_eq!(
            data,
            vec![
                Some("{\"a\":1}".into()),
                None,
                Some("x\ny".into()),
                Some("z".into())
            ]
        );
        let joined: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(joined, stream);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn replacing_the_data_keeps_the_other_fields() {
        let mut s = Splitter::new(1024);
        let event = s
            .push(b"id: 7\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n")
            .unwrap()
            .remove(0);
        let replaced = event.with_replaced_data("{\"b\":2}");
        assert_eq!(replaced, b"id: 7\nevent: message\ndata: {\"b\":2}\n\n");
        assert_eq!(
            Splitter::new(64).push(&replaced).unwrap()[0]
                .data
                .as_deref(),
            Some("{\"b\":2}")
        );
    }

    #[test]
    fn an_event_longer_than_the_bound_is_refused() {
        let mut s = Splitter::new(8);
        assert_eq!(s.push(b"data: 0123456789"), Err(EventTooLarge(8)));
    }

    proptest! {
        /// However the stream is cut into chunks, the same events come out, and every byte
        /// comes out once, in order.
        #[test]
        fn chunking_does_not_change_the_events(
            lines in proptest::collection::vec("(data: [a-z{}:\"]{0,6}|id: [0-9]{1,3}|)(\n|\r\n|\r)", 0..30),
            cuts in proptest::collection::vec(0usize..64, 0..10),
        ) {
            let stream: Vec<u8> = lines.concat().into_bytes();
            let mut whole = Splitter::new(1 << 20);
            let expected = whole.push(&stream).unwrap();
            let rest = whole.finish();
            let mut chunked = Splitter::new(1 << 20);
            let mut got = Vec::new();
            let mut at = 0;
            for cut in cuts {
                let end = (at + cut).min(stream.len());
                got.extend(chunked.push(&stream[at..end]).unwrap());
                at = end;
            }
            got.extend(chunked.push(&stream[at..]).unwrap());
            let tail = chunked.finish();
            prop_assert_eq!(&got, &expected);
            // A trailing lone `\r` may or may not have ended an event yet: bytes are what count.
            let mut all: Vec<u8> = got.iter().flat_map(|e| e.raw.clone()).collect();
            all.extend(tail);
            prop_assert_eq!(all, stream);
            let _ = rest;
        }
    }
}
