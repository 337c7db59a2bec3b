# METADATA
# title: Where the policy data is loaded
# description: |
#   The policy reads its data at `data.pyagent`. Loading the folder that holds `rego/` and `data/`
#   as one root (`opa run -s policies`, `opa test policies`) puts it at `data.data.pyagent`: every
#   device would then be of an "unknown organisation". That is reported as one error,
#   `misconfigured_data_root`, that says how to load the policy instead; so is a policy loaded
#   without its data at all (`opa run -s policies/rego`), as `missing_policy_data`. Either is the
#   server's problem, not the device's.
package pyagent.lib.layout

# METADATA
# title: How to load the policy
hint := "load the policy as two roots, its rego/ and data/ folders: `opa run -s policies/rego policies/data`, `opa test policies/rego policies/data`"

# METADATA
# title: The policy data is under data.data, not data.pyagent
misplaced if {
	data.data.pyagent # first: where it is absent, as it should be, nothing else is read
	not loaded
}

# METADATA
# title: The policy data is at data.pyagent
loaded if data.pyagent.organizations

# METADATA
# title: There is no policy data at all (only the Rego was loaded)
missing if {
	not data.data.pyagent
	not loaded
}

# METADATA
# title: Layout errors
errors contains err if {
	missing
	err := {
		"code": "missing_policy_data",
		"message": concat("", ["no policy data at data.pyagent (only the Rego was loaded): ", hint]),
	}
}

errors contains err if {
	misplaced
	err := {
		"code": "misconfigured_data_root",
		"message": concat("", ["policy data found at data.data.pyagent, not data.pyagent (the policy folder was loaded as one root): ", hint]),
	}
}
