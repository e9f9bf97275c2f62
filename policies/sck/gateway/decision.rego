# Default sck gateway policy: authorizes MCP tool calls and upstream service calls.
#
# A request is allowed only when no deny rule fires. Callers authenticate either with a gateway
# token (input.token: org, LoA, scopes) or as a pinned ANS identity whose X-SCK signature the
# gateway verified (input.caller). The gateway fills those fields from verified facts only.
# Requirements per action, per tool and per upstream caller live in data.sck.gateway.
package sck.gateway

import rego.v1

default allow := false

allow if count(deny) == 0

decision := {"allow": allow, "reasons": reasons}

reasons := sort([r | some r in deny])

requirement := data.sck.gateway.actions[input.action]

token_present if input.token

caller_present if input.caller

# --- who is asking -------------------------------------------------------------------------

deny contains "no_credentials" if {
	not token_present
	not caller_present
}

deny contains "unknown_action" if not data.sck.gateway.actions[input.action]

deny contains "missing_resource_org" if not input.resource.org

# --- gateway tokens -------------------------------------------------------------------------

deny contains "org_mismatch" if {
	token_present
	input.token.org != input.resource.org
}

deny contains msg if {
	token_present
	input.token.loa < requirement.min_loa
	msg := sprintf("loa %d below required %d", [input.token.loa, requirement.min_loa])
}

deny contains msg if {
	token_present
	required := data.sck.gateway.tools.min_loa[input.resource.tool]
	input.token.loa < required
	msg := sprintf("tool %s requires loa %d", [input.resource.tool, required])
}

deny contains "scope_missing" if {
	token_present
	requirement
	not scope_granted
}

scope_granted if {
	some granted in input.token.scope
	some pattern in requirement.scopes
	glob.match(pattern, [":"], granted)
}

deny contains "token_expired" if {
	token_present
	input.now
	input.token.exp <= input.now
}

deny contains "subject_blocked" if {
	token_present
	data.sck.gateway.blocked_subjects[input.token.sub]
}

# --- tools ----------------------------------------------------------------------------------

deny contains msg if {
	reason := data.sck.gateway.tools.blocked[input.resource.tool]
	msg := sprintf("tool %s is blocked: %s", [input.resource.tool, reason])
}

# --- upstream callers (X-SCK signed, ANS identity pinned) --------------------------------------

upstream_caller := data.sck.gateway.upstream.callers[input.caller.ans_id]

deny contains "caller_unknown" if {
	caller_present
	not upstream_caller
}

deny contains "caller_org_mismatch" if {
	caller_present
	input.caller.org != input.resource.org
}

deny contains "caller_org_mismatch" if {
	caller_present
	upstream_caller.org != input.caller.org
}

deny contains "caller_action_denied" if {
	caller_present
	upstream_caller
	not input.action in upstream_caller.actions
}
