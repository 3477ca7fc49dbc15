//! Streamed chat completions: what the providers' streams look like to the gateway
//! ([`Chunks`]: OpenAI `chat.completion.chunk` objects, whatever the upstream's wire
//! format), the decoder of OpenAI-style server-sent events ([`SseDecoder`], [`sse_chunks`]),
//! and the assembly of a stream into the `chat.completion` its run records ([`Assembled`]).

use std::collections::BTreeMap;
use std::pin::Pin;

use domain::FailureClassification;
use futures::Stream;
use resilience::{VendorFailure, VendorStream};
use serde_json::{Value, json};

/// A provider's streamed answer: `chat.completion.chunk` objects in order, then the end;
/// a failure (the stream cut, an error event, a clock run out) is the last item.
pub type Chunks = Pin<Box<dyn Stream<Item = Result<Value, VendorFailure>> + Send>>;

/// The largest single event held while it arrives (a chunk carries a few tokens; a
/// runaway line is the vendor misbehaving, not a chunk).
const MAX_EVENT: usize = 1 << 20;

/// One server-sent event: its `event` field (absent on OpenAI's chat streams, the type on
/// the Responses API's) and its `data` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into server-sent events (the WHATWG rules the vendors follow:
/// lines end with `\n`, `\r\n` or `\r`; a blank line ends an event; `:` starts a comment;
/// one space after the field's colon is dropped). Chunks may split anywhere.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Adds bytes as they came; `false` when an unfinished line would pass [`MAX_EVENT`].
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        self.buf.len() <= MAX_EVENT
    }

    /// The next whole event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r')?;
            // A `\r` at the very end may be the first half of `\r\n`: wait for more.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                return None;
            }
            let skip = if self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.data.is_empty() {
                    self.event = None;
                    continue;
                }
                return Some(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data).join("\n"),
                });
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "data" => self.data.push(value.to_owned()),
                "event" => self.event = Some(value.to_owned()),
                _ => {}
            }
        }
    }
}

/// How an OpenAI-style event stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Chat completions: `data: {chunk}` events, `data: [DONE]` at the end, an
    /// `{"error": …}` event when the upstream fails mid-stream.
    Chat,
    /// The Responses API: typed events (`type` in the data), no `[DONE]`: the stream ends
    /// after its terminal event (`response.completed`, `response.incomplete`,
    /// `response.failed`); an `error` event is a failure.
    Responses,
}

/// The Responses API's terminal event types.
pub const TERMINAL_EVENTS: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// An OpenAI-style event stream as [`Chunks`] (the events' data, in order). The body ending
/// before the dialect's end is a cut stream. `redact` cleans the vendor's error message.
pub fn sse_chunks(
    stream: VendorStream,
    vendor: &'static str,
    redact: impl Fn(&str) -> String + Send + 'static,
) -> Chunks {
    sse_events(stream, vendor, redact, Dialect::Chat)
}

/// [`sse_chunks`] in either [`Dialect`].
pub fn sse_events(
    stream: VendorStream,
    vendor: &'static str,
    redact: impl Fn(&str) -> String + Send + 'static,
    dialect: Dialect,
) -> Chunks {
    struct State<R> {
        stream: VendorStream,
        decoder: SseDecoder,
        done: bool,
        vendor: &'static str,
        redact: R,
        dialect: Dialect,
    }
    let state = State {
        stream,
        decoder: SseDecoder::default(),
        done: false,
        vendor,
        redact,
        dialect,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if let Some(event) = s.decoder.next_event() {
                if event.data == "[DONE]" && s.dialect == Dialect::Chat {
                    return None;
                }
                let item = match serde_json::from_str::<Value>(&event.data) {
                    Ok(v)
                        if s.dialect == Dialect::Chat
                            && v.get("error").is_some_and(|e| !e.is_null()) =>
                    {
                        Err(error_event(s.vendor, &v["error"], &s.redact))
                    }
                    Ok(v) if s.dialect == Dialect::Responses && v["type"] == "error" => {
                        Err(error_event(s.vendor, &v, &s.redact))
                    }
                    Ok(v) if v.is_object() => {
                        // The terminal event is the last: what follows is not read.
                        if s.dialect == Dialect::Responses
                            && TERMINAL_EVENTS.contains(&v["type"].as_str().unwrap_or_default())
                        {
                            s.done = true;
                            return Some((Ok(v), s));
                        }
                        Ok(v)
                    }
                    _ => Err(VendorFailure::new(
                        FailureClassification::VendorError,
                        format!("{} sent a stream event that is not a JSON object", s.vendor),
                    )),
                };
                s.done = item.is_err();
                return Some((item, s));
            }
            let failure = match s.stream.next().await {
                Some(Ok(bytes)) if s.decoder.push(&bytes) => continue,
                Some(Ok(_)) => VendorFailure::new(
                    FailureClassification::VendorError,
                    format!("{} sent a stream event over 1 MiB", s.vendor),
                ),
                Some(Err(f)) => f,
                None => VendorFailure::new(
                    FailureClassification::Transient,
                    match s.dialect {
                        Dialect::Chat => format!("{}'s stream ended before its [DONE]", s.vendor),
                        Dialect::Responses => {
                            format!("{}'s stream ended before its terminal event", s.vendor)
                        }
                    },
                ),
            };
            s.done = true;
            return Some((Err(failure), s));
        }
    }))
}

/// An upstream's `{"error": {message, type, code}}` event as a failure.
fn error_event(vendor: &str, error: &Value, redact: &impl Fn(&str) -> String) -> VendorFailure {
    let code = error["code"]
        .as_str()
        .or_else(|| error["type"].as_str())
        .map(str::to_owned);
    let message = error["message"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or_default();
    let mut failure = VendorFailure::new(
        FailureClassification::VendorError,
        if message.is_empty() {
            format!("{vendor} ended the stream with an error")
        } else {
            format!(
                "{vendor} ended the stream with an error: {}",
                redact(message)
            )
        },
    );
    failure.vendor_code = code;
    failure
}

/// The SSE frame of one chunk.
pub fn frame(chunk: &Value) -> bytes::Bytes {
    bytes::Bytes::from(format!("data: {chunk}\n\n"))
}

/// The stream's end as OpenAI writes it.
pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";
/// What keeps a silent stream's connection open (a comment: clients ignore it).
pub const KEEP_ALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// Whether a chunk only carries the usage (`choices` empty, `usage` set): what
/// `stream_options.include_usage` adds at the end, relayed only to callers who asked.
pub fn is_usage_only(chunk: &Value) -> bool {
    chunk["choices"].as_array().is_some_and(Vec::is_empty) && chunk["usage"].is_object()
}

/// A stream's chunks put together as the `chat.completion` a non-streamed call would have
/// answered: content, refusal and tool calls concatenated per choice, the finish reasons,
/// the usage of the final chunk.
#[derive(Debug, Default)]
pub struct Assembled {
    id: Option<Value>,
    model: Option<Value>,
    created: Option<Value>,
    system_fingerprint: Option<Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    chunks: u64,
}

#[derive(Debug, Default)]
struct Choice {
    role: Option<String>,
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: BTreeMap<u64, ToolCall>,
    finish_reason: Value,
}

#[derive(Debug, Default)]
struct ToolCall {
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

fn append(to: &mut Option<String>, piece: &Value) {
    if let Some(piece) = piece.as_str() {
        to.get_or_insert_with(String::new).push_str(piece);
    }
}

impl Assembled {
    /// Adds one chunk.
    pub fn add(&mut self, chunk: &Value) {
        self.chunks += 1;
        for (slot, field) in [
            (&mut self.id, "id"),
            (&mut self.model, "model"),
            (&mut self.created, "created"),
            (&mut self.system_fingerprint, "system_fingerprint"),
        ] {
            // Azure's first chunk (the prompt's filter results) has blank ones.
            let blank =
                matches!(&chunk[field], Value::Null) || chunk[field] == "" || chunk[field] == 0;
            if slot.is_none() && !blank {
                *slot = Some(chunk[field].clone());
            }
        }
        if chunk["usage"].is_object() {
            self.usage = Some(chunk["usage"].clone());
        }
        for c in chunk["choices"].as_array().into_iter().flatten() {
            let choice = self
                .choices
                .entry(c["index"].as_u64().unwrap_or(0))
                .or_default();
            let delta = &c["delta"];
            if let Some(role) = delta["role"].as_str() {
                choice.role = Some(role.to_owned());
            }
            append(&mut choice.content, &delta["content"]);
            append(&mut choice.refusal, &delta["refusal"]);
            for t in delta["tool_calls"].as_array().into_iter().flatten() {
                let call = choice
                    .tool_calls
                    .entry(t["index"].as_u64().unwrap_or(0))
                    .or_default();
                if let Some(id) = t["id"].as_str() {
                    call.id = Some(id.to_owned());
                }
                if let Some(kind) = t["type"].as_str() {
                    call.kind = Some(kind.to_owned());
                }
                call.name
                    .push_str(t["function"]["name"].as_str().unwrap_or_default());
                call.arguments
                    .push_str(t["function"]["arguments"].as_str().unwrap_or_default());
            }
            if !c["finish_reason"].is_null() {
                choice.finish_reason = c["finish_reason"].clone();
            }
        }
    }

    /// How many chunks came.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// The final chunk's usage, if the upstream sent one.
    pub fn usage(&self) -> Option<&Value> {
        self.usage.as_ref()
    }

    /// The `chat.completion` the chunks make.
    pub fn completion(&self) -> Value {
        let choices: Vec<Value> = self
            .choices
            .iter()
            .map(|(index, c)| {
                let mut message = json!({
                    "role": c.role.as_deref().unwrap_or("assistant"),
                    "content": c.content,
                });
                if let Some(refusal) = &c.refusal {
                    message["refusal"] = json!(refusal);
                }
                if !c.tool_calls.is_empty() {
                    message["tool_calls"] = c
                        .tool_calls
                        .values()
                        .map(|t| {
                            json!({"id": t.id, "type": t.kind.as_deref().unwrap_or("function"),
                                   "function": {"name": t.name, "arguments": t.arguments}})
                        })
                        .collect();
                }
                json!({"index": index, "message": message, "finish_reason": c.finish_reason})
            })
            .collect();
        let mut completion = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(fp) = &self.system_fingerprint {
            completion["system_fingerprint"] = fp.clone();
        }
        if let Some(usage) = &self.usage {
            completion["usage"] = usage.clone();
        }
        completion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(decoder: &mut SseDecoder) -> Vec<SseEvent> {
        std::iter::from_fn(|| decoder.next_event()).collect()
    }

    #[test]
    fn events_split_anywhere_and_in_every_line_ending_come_out_whole() {
        let wire = "data: {\"a\":1}\n\n: keep-alive\n\nevent: response.created\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata:[DONE]\r\r\n";
        for cut in 0..wire.len() {
            let mut d = SseDecoder::default();
            let mut seen = Vec::new();
            assert!(d.push(&wire.as_bytes()[..cut]));
            seen.extend(events(&mut d));
            assert!(d.push(&wire.as_bytes()[cut..]));
            seen.extend(events(&mut d));
            assert_eq!(
                seen,
                vec![
                    SseEvent {
                        event: None,
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        event: Some("response.created".into()),
                        data: "{\"b\":\n2}".into()
                    },
                    SseEvent {
                        event: None,
                        data: "[DONE]".into()
                    },
                ],
                "split at {cut}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever bytes an upstream sends, the decoder never panics and holds no more than
        /// its bound.
        #[test]
        fn any_bytes_are_decoded_without_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)) {
            let mut d = SseDecoder::default();
            for c in &chunks {
                if !d.push(c) {
                    break;
                }
                while d.next_event().is_some() {}
            }
        }

        /// Events come out the same however the bytes are cut into chunks.
        #[test]
        fn events_do_not_depend_on_where_chunks_are_cut(
            events in proptest::collection::vec(("[a-z.]{0,12}", "[ -~]{0,40}"), 1..8),
            cuts in proptest::collection::vec(0usize..400, 0..6),
            crlf: bool,
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut wire = String::new();
            for (name, data) in &events {
                if !name.is_empty() {
                    wire.push_str(&format!("event: {name}{end}"));
                }
                wire.push_str(&format!("data: {data}{end}{end}"));
            }
            let bytes = wire.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut d = SseDecoder::default();
            let mut seen = Vec::new();
            let mut from = 0;
            for p in points.into_iter().chain([bytes.len()]) {
                d.push(&bytes[from..p]);
                seen.extend(std::iter::from_fn(|| d.next_event()));
                from = p;
            }
            let expected: Vec<SseEvent> = events
                .iter()
                .map(|(name, data)| SseEvent {
                    event: (!name.is_empty()).then(|| name.clone()),
                    // One leading space after the colon is the separator, not data.
                    data: data.clone(),
                })
                .collect();
            proptest::prop_assert_eq!(seen, expected);
        }
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut d = SseDecoder::default();
        assert!(d.push(&vec![b'x'; MAX_EVENT]));
        assert!(!d.push(b"x"));
        assert!(d.next_event().is_none());
    }

    #[test]
    fn chunks_assemble_into_the_completion_with_tool_calls_and_usage() {
        let mut a = Assembled::default();
        for chunk in [
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": null},
                                           {"index": 1, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": "get", "arguments": "{\"q\":"}}]}, "finish_reason": null}]}),
            json!({"id": "c1", "choices": [{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
                                            "finish_reason": "tool_calls"},
                                           {"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        ] {
            a.add(&chunk);
        }
        let c = a.completion();
        assert_eq!(c["id"], "c1");
        assert_eq!(c["created"], 7);
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            c["choices"][1]["message"]["tool_calls"][0],
            json!({"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":1}"}})
        );
        assert_eq!(c["choices"][1]["message"]["content"], Value::Null);
        assert_eq!(c["usage"]["total_tokens"], 5);
        assert_eq!(a.chunks(), 5);
        assert!(is_usage_only(&json!({"choices": [], "usage": {}})));
        assert!(!is_usage_only(&json!({"choices": [{}], "usage": {}})));
    }
}
