package pyagent.lib.layout_test

import data.pyagent.lib.layout

# This test fails when the policy folder is loaded as one root (`opa test policies`); its output
# (printed for a failing test) says how to load it.
test_policy_data_is_at_data_pyagent_not_data_data_pyagent if {
	print(layout.hint)
	not layout.misplaced
}

test_data_under_data_data_is_reported_with_the_hint if {
	layout.misplaced with layout.loaded as false with data.data.pyagent as {"organizations": {}}
	errs := layout.errors with layout.loaded as false with data.data.pyagent as {"organizations": {}}
	[e.code | some e in errs] == ["misconfigured_data_root"]
}
