# METADATA
# title: Layout tests
# description: The policy data loaded under the wrong root, or not at all, is the one error.
package pyagent.lib.layout_test

import data.pyagent.lib.layout

# This test fails when the policy folder is loaded as one root (`opa test policies`); its output
# (printed for a failing test) says how to load it.
test_policy_data_is_at_data_pyagent_not_data_data_pyagent if {
	print(layout.hint)
	not layout.misplaced
}

test_no_policy_data_is_reported_with_the_hint if {
	errs := layout.errors with layout.loaded as false with data.data.pyagent as false
	errs == {{
		"code": "missing_policy_data",
		"message": concat("", ["no policy data at data.pyagent (only the Rego was loaded): ", layout.hint]),
	}}
}

test_policy_data_at_data_pyagent_is_neither_missing_nor_misplaced if {
	not layout.missing
	count(layout.errors) == 0
}

test_data_under_data_data_is_reported_with_the_hint if {
	layout.misplaced with layout.loaded as false with data.data.pyagent as {"organizations": {}}
	errs := layout.errors with layout.loaded as false with data.data.pyagent as {"organizations": {}}
	errs == {{"code": "misconfigured_data_root", "message": "policy data found at data.data.pyagent, not data.pyagent (the policy folder was loaded as one root): load the policy as two roots, its rego/ and data/ folders: `opa run -s policies/rego policies/data`, `opa test policies/rego policies/data`"}}
}
