# METADATA
# title: OPA server authorisation tests
package system.authz_test

import data.system.authz

token_hash := crypto.sha256("s3cret-token")

servers := {"token_sha256s": [token_hash]}

decision_query := {"method": "POST", "path": ["v1", "data", "pyagent", "decision"], "identity": "s3cret-token"}

test_decision_query_with_known_token_allowed if {
	authz.allow with input as decision_query with data.pyagent_server as servers
}

test_wrong_token_denied if {
	authz.allow == false with input as object.union(decision_query, {"identity": "guess"})
		with data.pyagent_server as servers
}

test_missing_token_denied if {
	authz.allow == false with input as object.remove(decision_query, ["identity"])
		with data.pyagent_server as servers
}

test_other_data_path_denied if {
	authz.allow == false with input as object.union(decision_query, {"path": ["v1", "data", "pyagent", "exemptions"]})
		with data.pyagent_server as servers
}

test_whole_data_document_denied if {
	authz.allow == false with input as object.union(decision_query, {"path": ["v1", "data"]})
		with data.pyagent_server as servers
}

test_policy_upload_denied if {
	authz.allow == false with input as object.union(decision_query, {"method": "PUT", "path": ["v1", "policies", "x"]})
		with data.pyagent_server as servers
}

test_crafted_path_with_traversal_denied if {
	authz.allow == false with input as object.union(decision_query, {"path": ["v1", "data", "pyagent", "decision", "..", ".."]})
		with data.pyagent_server as servers
}

test_health_allowed_without_token if {
	authz.allow with input as {"method": "GET", "path": ["health"]}
}

test_no_tokens_configured_denies_everything if {
	authz.allow == false with input as decision_query
}

test_decision_path_with_another_method_denied if {
	authz.allow == false with input as object.union(decision_query, {"method": "GET"}) with data.pyagent_server as servers
}

test_health_with_another_method_denied if {
	authz.allow == false with input as {"method": "POST", "path": ["health"]}
}

test_get_of_data_without_token_denied if {
	# GET /v1/data would answer the whole policy data (exemptions, token hashes)
	authz.allow == false with input as {"method": "GET", "path": ["v1", "data"]}
}

test_known_token_is_one_whose_hash_the_server_holds if {
	authz.known_token with input as decision_query with data.pyagent_server as servers
	not authz.known_token with input as object.union(decision_query, {"identity": "guess"})
		with data.pyagent_server as servers
	not authz.known_token with input as decision_query with data.pyagent_server as {"token_sha256s": []}
}
