//! What an MCP call is decided as: the action name of each JSON-RPC method (`tools/call` →
//! `tools.invoke`; any other method its name with `/` as `.`, e.g. `tools.list`,
//! `resources.read`, `prompts.get`, `initialize`; a route may rename any), the `resource`
//! (`org`, `server` = the route id, and `tool`, `uri` or `prompt`) and the `context`
//! (`method`, the arguments' SHA-256, and the arguments themselves only when the route sets
//! `forward_arguments`), and which list answers are filtered per entry ([`Listing`]).

use serde_json::{json, Value};

use super::route::Route;

/// The action `method` is decided as on `route`.
pub fn action(route: &Route, method: &str) -> String {
    route.action(method, || match method {
        "tools/call" => "tools.invoke".to_owned(),
        other => other.replace('/', "."),
    })
}

/// SHA-256 (RFC 8785) of a `tools/call`'s or `prompts/get`'s `arguments` (of `{}` if absent).
pub fn arguments_sha256(params: Option<&Value>) -> String {
    let arguments = params
        .and_then(|p| p.get("arguments"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    sck_ledger::canonical::sha256_hex(&arguments).unwrap_or_default()
}

/// The `resource` and `context` a request of `method` is decided with.
pub fn resource_and_context(route: &Route, method: &str, params: Option<&Value>) -> (Value, Value) {
    let mut resource = json!({"org": route.org, "server": route.id});
    let field = |name: &str| params.and_then(|p| p.get(name)).cloned();
    match method {
        "tools/call" => resource["tool"] = field("name").unwrap_or(Value::Null),
        "prompts/get" => resource["prompt"] = field("name").unwrap_or(Value::Null),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            resource["uri"] = field("uri").unwrap_or(Value::Null)
        }
        _ => {}
    }
    let mut context = json!({"method": method});
    if matches!(method, "tools/call" | "prompts/get") {
        context["arguments_sha256"] = json!(arguments_sha256(params));
        if route.forward_arguments {
            context["arguments"] = field("arguments").unwrap_or_else(|| json!({}));
        }
    }
    (resource, context)
}

/// A list method whose answer is filtered to the entries the caller may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Tools,
    Resources,
    Prompts,
}

impl Listing {
    pub fn of(method: &str) -> Option<Listing> {
        match method {
            "tools/list" => Some(Listing::Tools),
            "resources/list" => Some(Listing::Resources),
            "prompts/list" => Some(Listing::Prompts),
            _ => None,
        }
    }

    /// The field of the result holding the entries.
    pub fn field(self) -> &'static str {
        match self {
            Listing::Tools => "tools",
            Listing::Resources => "resources",
            Listing::Prompts => "prompts",
        }
    }

    /// The call using `entry` would be (method and params): what the entry is decided as.
    pub fn call_for(self, entry: &Value) -> (&'static str, Value) {
        match self {
            Listing::Tools => ("tools/call", json!({"name": entry.get("name")})),
            Listing::Resources => ("resources/read", json!({"uri": entry.get("uri")})),
            Listing::Prompts => ("prompts/get", json!({"name": entry.get("name")})),
        }
    }
}
