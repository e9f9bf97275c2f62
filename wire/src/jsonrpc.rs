//! JSON-RPC 2.0 messages as MCP's Streamable HTTP transport carries them: one message or a
//! batch (an array) per POST body, each a request (`id` + `method`), a notification
//! (`method`, no `id`) or a response (`id` + `result`/`error`).
//!
//! Invariant: [`parse_body`] accepts a body only if every message in it is well-formed, so
//! the gateway decides exactly the requests that will be forwarded; a malformed message is
//! answered with the JSON-RPC error it earns ([`RpcError`]) and never forwarded.

use serde_json::{json, Map, Value};

/// `-32700`: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// `-32600`: JSON, but not a valid JSON-RPC 2.0 message (or an empty batch).
pub const INVALID_REQUEST: i64 = -32600;
/// `-32003`: sck's policy denied the request (the error's `data` carries the reasons and the
/// decision id).
pub const POLICY_DENIED: i64 = -32003;

/// A JSON-RPC error object with the `id` of the message it answers (`null` if unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Value,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    /// The error as a JSON-RPC response object.
    pub fn to_response(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        json!({"jsonrpc": "2.0", "id": self.id, "error": error})
    }
}

/// One well-formed message of a body.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
    },
    /// A client's answer to a server-to-client request.
    Response {
        id: Value,
    },
}

/// A parsed body: its messages as sent (`raw`) beside what each is, and whether it was a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub batch: bool,
    pub messages: Vec<(Message, Value)>,
}

/// Parses a POST body: a JSON-RPC message or a non-empty batch of them.
///
/// Errors: [`PARSE_ERROR`] for text that is not JSON; [`INVALID_REQUEST`] for an empty batch
/// or any message that is not a JSON-RPC 2.0 request, notification or response (its `id`
/// when it has a usable one).
pub fn parse_body(body: &[u8]) -> Result<Body, RpcError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RpcError {
        id: Value::Null,
        code: PARSE_ERROR,
        message: format!("parse error: {e}"),
        data: None,
    })?;
    let (batch, items) = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(invalid(Value::Null, "empty batch"));
        }
        Value::Array(items) => (true, items),
        other => (false, vec![other]),
    };
    let messages = items
        .into_iter()
        .map(|raw| classify(&raw).map(|m| (m, raw)))
        .collect::<Result<_, _>>()?;
    Ok(Body { batch, messages })
}

fn invalid(id: Value, why: &str) -> RpcError {
    RpcError {
        id,
        code: INVALID_REQUEST,
        message: format!("invalid request: {why}"),
        data: None,
    }
}

/// A usable id: a string or an integer (JSON-RPC also allows `null`, which MCP forbids).
fn usable_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// What one message is, or why it is not a JSON-RPC 2.0 message.
pub fn classify(raw: &Value) -> Result<Message, RpcError> {
    let Some(fields) = raw.as_object() else {
        return Err(invalid(Value::Null, "a message must be a JSON object"));
    };
    let id = fields.get("id");
    let answer_id = id
        .filter(|id| usable_id(id))
        .cloned()
        .unwrap_or(Value::Null);
    if fields.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(answer_id, "jsonrpc must be \"2.0\""));
    }
    if let Some(id) = id {
        if !usable_id(id) {
            return Err(invalid(Value::Null, "id must be a string or an integer"));
        }
    }
    match (fields.get("method"), id) {
        (Some(Value::String(method)), _) if method.is_empty() => {
            Err(invalid(answer_id, "method must not be empty"))
        }
        (Some(Value::String(method)), id) => {
            let params = fields.get("params").cloned();
            if params
                .as_ref()
                .is_some_and(|p| !p.is_object() && !p.is_array())
            {
                return Err(invalid(answer_id, "params must be an object or an array"));
            }
            Ok(match id {
                Some(id) => Message::Request {
                    id: id.clone(),
                    method: method.clone(),
                    params,
                },
                None => Message::Notification {
                    method: method.clone(),
                },
            })
        }
        (Some(_), _) => Err(invalid(answer_id, "method must be a string")),
        (None, Some(id)) if fields.contains_key("result") != fields.contains_key("error") => {
            Ok(Message::Response { id: id.clone() })
        }
        (None, _) => Err(invalid(
            answer_id,
            "neither a request, a notification nor a response",
        )),
    }
}

/// `params.<name>` of a request, if it is a string.
pub fn param_str<'a>(params: Option<&'a Value>, name: &str) -> Option<&'a str> {
    params?.get(name)?.as_str()
}

/// A response object's `result` (mutable), when the response is a success.
pub fn result_mut(response: &mut Value) -> Option<&mut Map<String, Value>> {
    response.get_mut("result")?.as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_classified() {
        let body = parse_body(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}},
                 {"jsonrpc":"2.0","method":"notifications/initialized"},
                 {"jsonrpc":"2.0","id":"s1","result":{}}]"#,
        )
        .unwrap();
        assert!(body.batch);
        let kinds: Vec<_> = body.messages.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Message::Request {
                    id: json!(1),
                    method: "tools/call".into(),
                    params: Some(json!({"name": "x"}))
                },
                Message::Notification {
                    method: "notifications/initialized".into()
                },
                Message::Response { id: json!("s1") },
            ]
        );
        assert!(
            !parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .unwrap()
                .batch
        );
    }

    #[test]
    fn malformed_bodies_get_their_error() {
        for (body, code, id) in [
            (&b"{"[..], PARSE_ERROR, Value::Null),
            (b"[]", INVALID_REQUEST, Value::Null),
            (b"3", INVALID_REQUEST, Value::Null),
            (br#"{"id":1,"method":"ping"}"#, INVALID_REQUEST, json!(1)),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                INVALID_REQUEST,
                json!(1),
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":""}"#,
                INVALID_REQUEST,
                json!(1),
            ),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                INVALID_REQUEST,
                Value::Null,
            ),
            (
                br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                INVALID_REQUEST,
                Value::Null,
            ),
            (
                br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":3}"#,
                INVALID_REQUEST,
                json!(2),
            ),
            (br#"{"jsonrpc":"2.0","id":3}"#, INVALID_REQUEST, json!(3)),
            (
                br#"{"jsonrpc":"2.0","id":3,"result":1,"error":{}}"#,
                INVALID_REQUEST,
                json!(3),
            ),
            (
                br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},5]"#,
                INVALID_REQUEST,
                Value::Null,
            ),
        ] {
            let e = parse_body(body).unwrap_err();
            assert_eq!(
                (e.code, &e.id),
                (code, &id),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(e.to_response()["error"]["code"], json!(code));
        }
    }
}
