package sck.gateway_test

import rego.v1

import data.sck.gateway

token_call := {
	"action": "tools.invoke",
	"resource": {"org": "org-1", "tool": "search.web"},
	"token": {"sub": "agent:a", "org": "org-1", "loa": 2, "scope": ["mcp:invoke"], "exp": 2000},
	"now": 1000,
}

signed_call := {
	"action": "bundles.evaluate",
	"resource": {"org": "org-acme"},
	"caller": {"ans_id": "ans://v1.0.0.agent.example.com", "org": "org-acme", "key_id": "k1", "scheme": "hmac-sha256"},
}

test_token_call_allowed if {
	d := gateway.decision with input as token_call
	d == {"allow": true, "reasons": []}
}

test_wildcard_scope_allowed if {
	gateway.allow with input as object.union(token_call, {"token": object.union(token_call.token, {"scope": ["mcp:*"]})})
}

test_no_credentials_denied if {
	d := gateway.decision with input as {"action": "tools.invoke", "resource": {"org": "org-1"}}
	d.allow == false
	"no_credentials" in d.reasons
}

test_unknown_action_denied if {
	d := gateway.decision with input as object.union(token_call, {"action": "rm.rf"})
	"unknown_action" in d.reasons
}

test_missing_resource_org_denied if {
	d := gateway.decision with input as json.remove(token_call, ["resource/org"])
	"missing_resource_org" in d.reasons
}

test_org_mismatch_denied if {
	d := gateway.decision with input as object.union(token_call, {"resource": {"org": "org-2"}})
	d.reasons == ["org_mismatch"]
}

test_low_loa_denied if {
	d := gateway.decision with input as object.union(token_call, {"token": object.union(token_call.token, {"loa": 1})})
	d.reasons == ["loa 1 below required 2"]
}

test_high_risk_tool_needs_higher_loa if {
	d := gateway.decision with input as object.union(token_call, {"resource": {"org": "org-1", "tool": "shell.exec"}})
	d.reasons == ["tool shell.exec requires loa 4"]
}

test_high_risk_tool_allowed_at_loa_4 if {
	gateway.allow with input as object.union(token_call, {
		"resource": {"org": "org-1", "tool": "shell.exec"},
		"token": object.union(token_call.token, {"loa": 4}),
	})
}

test_scope_missing_denied if {
	d := gateway.decision with input as object.union(token_call, {"token": object.union(token_call.token, {"scope": ["policy:read"]})})
	d.reasons == ["scope_missing"]
}

test_expired_token_denied if {
	d := gateway.decision with input as object.union(token_call, {"now": 2000})
	d.reasons == ["token_expired"]
}

test_blocked_subject_denied if {
	d := gateway.decision with input as object.union(token_call, {"token": object.union(token_call.token, {"sub": "agent:mallory"})})
	d.reasons == ["subject_blocked"]
}

test_blocked_tool_denied_even_at_loa_4 if {
	d := gateway.decision with input as object.union(token_call, {
		"resource": {"org": "org-1", "tool": "debug.eval"},
		"token": object.union(token_call.token, {"loa": 4}),
	})
	d.reasons == ["tool debug.eval is blocked: arbitrary code evaluation is never allowed"]
}

test_signed_caller_allowed if {
	d := gateway.decision with input as signed_call
	d == {"allow": true, "reasons": []}
}

test_unknown_caller_denied if {
	d := gateway.decision with input as object.union(signed_call, {"caller": object.union(signed_call.caller, {"ans_id": "ans://v1.0.0.other.example.com"})})
	d.reasons == ["caller_unknown"]
}

test_caller_of_other_org_denied if {
	d := gateway.decision with input as object.union(signed_call, {
		"resource": {"org": "org-evil"},
		"caller": object.union(signed_call.caller, {"org": "org-evil"}),
	})
	d.reasons == ["caller_org_mismatch"]
}

test_caller_resource_org_mismatch_denied if {
	d := gateway.decision with input as object.union(signed_call, {"resource": {"org": "org-other"}})
	d.reasons == ["caller_org_mismatch"]
}

test_caller_action_not_granted_denied if {
	d := gateway.decision with input as object.union(signed_call, {"action": "policy.write"})
	d.reasons == ["caller_action_denied"]
}

# --- the enforcement point's actions (MCP routes and HTTP routes) ------------------------------

mcp_session := object.union(token_call, {"action": "initialize", "resource": {"org": "org-1", "server": "weather"}})

test_mcp_session_methods_allowed_with_any_mcp_scope if {
	every scope in ["mcp:read", "mcp:invoke", "mcp:*"] {
		every action in ["initialize", "ping"] {
			gateway.allow with input as object.union(mcp_session, {"action": action, "token": object.union(token_call.token, {"scope": [scope]})})
		}
	}
}

test_listing_needs_an_mcp_scope if {
	d := gateway.decision with input as object.union(mcp_session, {"action": "prompts.list", "token": object.union(token_call.token, {"scope": ["http:read"]})})
	d.reasons == ["scope_missing"]
	gateway.allow with input as object.union(mcp_session, {"action": "prompts.list", "token": object.union(token_call.token, {"scope": ["mcp:read"]})})
}

test_prompts_get_needs_loa_2 if {
	read := object.union(mcp_session, {"action": "prompts.get", "token": object.union(token_call.token, {"scope": ["mcp:read"], "loa": 1})})
	d := gateway.decision with input as read
	d.reasons == ["loa 1 below required 2"]
}

http_call := object.union(token_call, {"action": "http.get", "resource": {"org": "org-1", "route": "billing", "path": "/invoices"}, "token": object.union(token_call.token, {"scope": ["http:read"]})})

# Requirements list no wildcard pattern for http: one would admit every http: scope.
test_http_reads_need_http_read_and_writes_http_write if {
	gateway.allow with input as http_call
	d := gateway.decision with input as object.union(http_call, {"action": "http.post"})
	d.reasons == ["scope_missing"]
	gateway.allow with input as object.union(http_call, {"action": "http.post", "token": object.union(http_call.token, {"scope": ["http:write"]})})
}

test_http_delete_needs_loa_3 if {
	d := gateway.decision with input as object.union(http_call, {"action": "http.delete", "token": object.union(http_call.token, {"scope": ["http:write"]})})
	d.reasons == ["loa 2 below required 3"]
}
