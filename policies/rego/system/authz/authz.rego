# METADATA
# title: OPA server authorisation
# description: |
#   Used by `opa run --server --authentication=token --authorization=basic`. Allows only what the
#   agent needs: the decision query (POST /v1/data/pyagent/decision) with a known bearer token, and
#   unauthenticated health checks. Tokens are known by their SHA-256 only, from
#   `data.pyagent_server.token_sha256s` (a data file given to the server at start).
# scope: package
package system.authz

# METADATA
# title: Denied unless a rule below allows the request
default allow := false

# METADATA
# title: Decision query with a known token
allow if {
	input.method == "POST"
	input.path == ["v1", "data", "pyagent", "decision"]
	known_token
}

# METADATA
# title: Health checks
allow if {
	input.method == "GET"
	input.path == ["health"]
}

# METADATA
# title: The caller's token is one the server knows
# description: Compared by its SHA-256, as the tokens are kept.
known_token if crypto.sha256(input.identity) in {h | some h in data.pyagent_server.token_sha256s}
