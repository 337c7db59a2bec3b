# METADATA
# title: Exemptions
# description: |
#   Exemptions come from policy data only (`data.pyagent.exemptions`); nothing in the device
#   report can exempt a device. An exemption is in force while its `until` is after the
#   evaluation time, for its device, organisation and ban.
package pyagent.lib.exemptions

import data.pyagent.lib.clock

# METADATA
# title: The exemptions the data defines
# description: An empty object when none is defined.
default defined := {}

defined := data.pyagent.exemptions

# METADATA
# title: Exemptions for this device and organisation
for_device[id] := ex if {
	some id, ex in defined
	is_string(id) # (a list's entries, keyed by position, waive nothing: a data error says why)
	well_formed(ex)
	ex.device_id == input.report.device.id
	ex.organization == input.report.device.organization
}

# METADATA
# title: Exemptions in force, by ban
# description: When several are in force for one ban, the one with the smallest id is used.
in_force[ban] := ex if {
	count(defined) > 0 # none defined, as in most decisions: no rule below is evaluated
	some ban in {ex.ban | some ex in for_device}
	ids := sort([id | some id, ex in for_device; ex.ban == ban; clock.ahead(ex.until)])
	count(ids) > 0
	ex := object.union(for_device[ids[0]], {"id": ids[0]})
}

# METADATA
# title: Expired exemptions, by ban
expired[ban] := sort([id | some id, ex in for_device; ex.ban == ban; clock.reached(ex.until)]) if {
	count(defined) > 0 # (as in in_force)
	some ban in {ex.ban | some ex in for_device}
}

# METADATA
# title: Exemption errors
# description: None when no exemption is defined, as in most decisions (one check instead of two rules), else `errors_now`.
errors := set() if {
	count(defined) == 0
} else := errors_now

# METADATA
# title: Exemption errors, checked per decision
# description: An exemption without a valid `until` is a policy data error, never an open-ended waiver.
errors_now contains err if {
	not is_object(defined) # a list's entries would be keyed by their position
	err := {
		"code": "invalid_policy_data",
		"path": "pyagent.exemptions",
		"message": concat("", ["exemptions are listed as ", json.marshal(defined), "; expected exemptions keyed by their id"]),
	}
}

errors_now contains err if {
	some id, ex in defined
	not valid_until(ex) # not clock.valid_time(ex.until) would be undefined without `until`
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.exemptions", id, "until"]),
		"message": concat("", ["exemption ", id, " needs `until` as an RFC 3339 timestamp"]),
	}
}

errors_now contains err if {
	some id, ex in defined
	some field in required_fields
	not string_field(ex, field)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.exemptions", id, field]),
		"message": concat("", ["exemption ", id, " needs ", field, " as a string"]),
	}
}

# METADATA
# title: The fields every exemption must give
required_fields := ["device_id", "organization", "ban", "reason"]

# METADATA
# title: Well-formed exemption
# description: Only a well-formed exemption can waive anything; a malformed one is reported as an error.
well_formed(ex) if {
	every field in required_fields {
		string_field(ex, field)
	}
	clock.valid_time(ex.until)
}

# METADATA
# title: An exemption's field is a string
string_field(ex, field) if is_string(ex[field])

# METADATA
# title: An exemption's until is an RFC 3339 timestamp
valid_until(ex) if clock.valid_time(ex.until)
