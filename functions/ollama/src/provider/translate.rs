//! OpenAI's chat and embeddings shapes to Ollama's native ones and back (Ollama's
//! `docs/api.md`: `/api/chat`, `/api/embed`). Pure functions: no I/O.
//!
//! Requests: text parts of a message are joined, `data:` image parts become `images`
//! (base64), an assistant's tool calls carry their `arguments` as an object (OpenAI sends a
//! JSON string), `max_completion_tokens`/`max_tokens` is `options.num_predict`,
//! `temperature`, `top_p`, `seed`, `stop` go in `options`, `response_format` becomes
//! `format` (`"json"` or the JSON schema), `tools` pass as they are (Ollama takes OpenAI's
//! tool shape). Answers: `message` becomes the choice, `done_reason` the finish reason
//! (`tool_calls` when the model called tools), `prompt_eval_count`/`eval_count` the usage.

use serde_json::{Map, Value, json};

/// Ollama's `/api/chat` body for an OpenAI chat request (`model` already the upstream's).
pub fn chat_request(request: &Value, stream: bool) -> Value {
    let messages: Vec<Value> = request["messages"]
        .as_array()
        .map(|m| m.iter().map(message).collect())
        .unwrap_or_default();
    let mut options = Map::new();
    if let Some(n) = request["max_completion_tokens"]
        .as_u64()
        .or_else(|| request["max_tokens"].as_u64())
    {
        options.insert("num_predict".into(), json!(n));
    }
    for field in [
        "temperature",
        "top_p",
        "seed",
        "stop",
        "frequency_penalty",
        "presence_penalty",
    ] {
        if !request[field].is_null() {
            options.insert(field.into(), request[field].clone());
        }
    }
    let mut body = json!({"model": request["model"], "messages": messages, "stream": stream});
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    if request["tools"].is_array() {
        body["tools"] = request["tools"].clone();
    }
    match request["response_format"]["type"].as_str() {
        Some("json_object") => body["format"] = json!("json"),
        Some("json_schema") => {
            body["format"] = request["response_format"]["json_schema"]["schema"].clone();
        }
        _ => {}
    }
    body
}

fn message(m: &Value) -> Value {
    let mut out = json!({"role": m["role"]});
    let mut images = Vec::new();
    let content = match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let mut text = Vec::new();
            for p in parts {
                match p["type"].as_str() {
                    Some("text") => text.push(p["text"].as_str().unwrap_or_default().to_owned()),
                    Some("image_url") => {
                        let url = p["image_url"]["url"].as_str().unwrap_or_default();
                        if let Some((_, data)) = url.split_once(";base64,") {
                            images.push(json!(data));
                        }
                    }
                    _ => {}
                }
            }
            text.join("\n")
        }
        _ => String::new(),
    };
    out["content"] = json!(content);
    if !images.is_empty() {
        out["images"] = json!(images);
    }
    if let Some(calls) = m["tool_calls"].as_array() {
        out["tool_calls"] = calls
            .iter()
            .map(|c| {
                let arguments = match &c["function"]["arguments"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!({})),
                    other => other.clone(),
                };
                json!({"function": {"name": c["function"]["name"], "arguments": arguments}})
            })
            .collect();
    }
    if let Some(name) = m["name"].as_str() {
        out["tool_name"] = json!(name);
    }
    out
}

/// OpenAI's tool calls for Ollama's (`arguments` an object → a JSON string; ids made up,
/// Ollama gives none).
fn tool_calls(calls: &[Value], with_index: bool) -> Value {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let arguments = match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut call = json!({"id": format!("call_{i}"), "type": "function",
                                  "function": {"name": c["function"]["name"], "arguments": arguments}});
            if with_index {
                call["index"] = json!(i);
            }
            call
        })
        .collect()
}

fn finish_reason(answer: &Value, called_tools: bool) -> Value {
    if called_tools {
        return json!("tool_calls");
    }
    match answer["done_reason"].as_str() {
        Some("length") => json!("length"),
        Some(_) | None => json!("stop"),
    }
}

fn created(answer: &Value) -> i64 {
    answer["created_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| chrono::Utc::now().timestamp(), |t| t.timestamp())
}

fn usage(answer: &Value) -> Value {
    let prompt = answer["prompt_eval_count"].as_u64().unwrap_or(0);
    let completion = answer["eval_count"].as_u64().unwrap_or(0);
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion})
}

/// The `chat.completion` for Ollama's whole `/api/chat` answer.
pub fn chat_answer(answer: &Value, id: &str) -> Value {
    let calls = answer["message"]["tool_calls"]
        .as_array()
        .filter(|c| !c.is_empty());
    let mut message = json!({"role": "assistant", "content": answer["message"]["content"]});
    if let Some(calls) = calls {
        message["tool_calls"] = tool_calls(calls, false);
    }
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created(answer),
        "model": answer["model"],
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason(answer, calls.is_some())}],
        "usage": usage(answer),
    })
}

/// Turns the lines of Ollama's NDJSON stream into `chat.completion.chunk` objects.
#[derive(Debug)]
pub struct ChunkMaker {
    id: String,
    started: bool,
    called_tools: bool,
}

impl ChunkMaker {
    pub fn new(id: &str) -> Self {
        ChunkMaker {
            id: format!("chatcmpl-{id}"),
            started: false,
            called_tools: false,
        }
    }

    fn chunk(&self, line: &Value, choices: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": created(line),
               "model": line["model"], "choices": choices})
    }

    /// The chunks of one line (a line without `done` carries a delta; the `done` line
    /// gives the finish chunk and the usage chunk).
    pub fn line(&mut self, line: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.started {
            // As OpenAI streams: the role alone first.
            out.push(self.chunk(
                line,
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                        "finish_reason": null}]),
            ));
            self.started = true;
        }
        let mut delta = json!({});
        if let Some(text) = line["message"]["content"].as_str()
            && !text.is_empty()
        {
            delta["content"] = json!(text);
        }
        if let Some(calls) = line["message"]["tool_calls"]
            .as_array()
            .filter(|c| !c.is_empty())
        {
            delta["tool_calls"] = tool_calls(calls, true);
            self.called_tools = true;
        }
        if delta.as_object().is_some_and(|d| !d.is_empty()) {
            out.push(self.chunk(
                line,
                json!([{"index": 0, "delta": delta, "finish_reason": null}]),
            ));
        }
        if line["done"] == true {
            out.push(self.chunk(
                line,
                json!([{"index": 0, "delta": {},
                        "finish_reason": finish_reason(line, self.called_tools)}]),
            ));
            let mut usage_chunk = self.chunk(line, json!([]));
            usage_chunk["usage"] = usage(line);
            out.push(usage_chunk);
        }
        out
    }
}

/// Ollama's `/api/embed` body for an OpenAI embeddings request.
pub fn embed_request(request: &Value) -> Value {
    let mut body = json!({"model": request["model"], "input": request["input"], "truncate": true});
    if let Some(d) = request["dimensions"].as_u64() {
        body["dimensions"] = json!(d);
    }
    body
}

/// OpenAI's list of embeddings for Ollama's `/api/embed` answer (`encoding_format: base64`:
/// little-endian float32s, as OpenAI sends them).
pub fn embed_answer(answer: &Value, request: &Value) -> Option<Value> {
    let base64 = request["encoding_format"] == "base64";
    let data: Vec<Value> = answer["embeddings"]
        .as_array()?
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let floats: Vec<f64> = e
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            let embedding = if base64 {
                let bytes: Vec<u8> = floats
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                json!(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes
                ))
            } else {
                json!(floats)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = answer["prompt_eval_count"].as_u64().unwrap_or(0);
    Some(
        json!({"object": "list", "data": data, "model": answer["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_request_becomes_ollamas() {
        let request = json!({"model": "llama3.2", "max_tokens": 64, "temperature": 0.2,
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {}}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
                    "function": {"name": "get", "arguments": "{\"q\":1}"}}]},
                {"role": "tool", "content": "42", "name": "get"}]});
        let body = chat_request(&request, true);
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["options"],
            json!({"num_predict": 64, "temperature": 0.2})
        );
        assert_eq!(body["format"], "json");
        assert_eq!(body["messages"][0]["content"], "what is");
        assert_eq!(body["messages"][0]["images"], json!(["iVBORw0KGgo="]));
        assert_eq!(
            body["messages"][1]["tool_calls"][0]["function"]["arguments"],
            json!({"q": 1})
        );
        assert_eq!(body["messages"][2]["tool_name"], "get");
        assert_eq!(body["tools"], request["tools"]);
    }

    #[test]
    fn answers_and_stream_lines_become_openais() {
        let answer = json!({"model": "llama3.2", "created_at": "2026-12-08T10:00:00Z",
            "message": {"role": "assistant", "content": "",
                        "tool_calls": [{"function": {"name": "get", "arguments": {"q": 1}}}]},
            "done": true, "done_reason": "stop", "prompt_eval_count": 12, "eval_count": 3});
        let c = chat_answer(&answer, "r1");
        assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            c["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"q\":1}"
        );
        assert_eq!(c["usage"]["total_tokens"], 15);
        assert_eq!(c["created"], 1_796_724_000);
        let mut maker = ChunkMaker::new("r1");
        let first = maker.line(&json!({"model": "m", "message": {"role": "assistant", "content": "Hi"}, "done": false}));
        assert_eq!(first.len(), 2, "the role, then the content");
        assert_eq!(
            first[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(first[1]["choices"][0]["delta"], json!({"content": "Hi"}));
        let last = maker.line(
            &json!({"model": "m", "message": {"role": "assistant", "content": ""},
            "done": true, "done_reason": "length", "prompt_eval_count": 4, "eval_count": 9}),
        );
        assert_eq!(last.len(), 2, "the finish, then the usage");
        assert_eq!(last[0]["choices"][0]["finish_reason"], "length");
        assert_eq!(last[1]["usage"]["completion_tokens"], 9);
    }

    #[test]
    fn embeddings_come_back_as_floats_or_base64() {
        let answer =
            json!({"model": "all-minilm", "embeddings": [[0.5, -0.25]], "prompt_eval_count": 2});
        let floats = embed_answer(&answer, &json!({"input": "x"})).unwrap();
        assert_eq!(floats["data"][0]["embedding"], json!([0.5, -0.25]));
        let packed =
            embed_answer(&answer, &json!({"input": "x", "encoding_format": "base64"})).unwrap();
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            packed["data"][0]["embedding"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(&bytes[..4], &0.5f32.to_le_bytes());
        assert_eq!(floats["usage"]["prompt_tokens"], 2);
        assert!(embed_answer(&json!({"error": "x"}), &json!({})).is_none());
    }
}
