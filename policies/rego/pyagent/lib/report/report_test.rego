# METADATA
# title: Report check tests
# description: |
#   A report whose decisive fields have the wrong type or value is an error and never allows; a
#   crafted name, title or reason never hides a banned app.
package pyagent.lib.report_test

import data.pyagent.decision
import data.pyagent.lib.report
import data.pyagent.lib.testdata_test as testdata

tiktok := {"id": "com.zhiliaoapp.musically", "name": "TikTok"}

notes := {"id": "com.example.notes"}

device := {"id": "d-1", "platform": "android", "ownership": "corporate", "organization": "eu-commission", "mdm": {"enrolled": true}}

# The corporate Commission phone with `patch` merged into its device and `apps` installed.
phone(patch, apps) := {"at": "2023-03-16T09:30:00Z", "report": {"device": object.union(device, patch), "apps": apps}}

# The same phone with `key` left out of its device (or, for "apps", of its report).
phone_without(key) := {"at": "2023-03-16T09:30:00Z", "report": object.remove({"device": device, "apps": [tiktok]}, [key])} if {
	key == "apps"
} else := {"at": "2023-03-16T09:30:00Z", "report": {"device": object.remove(device, [key]), "apps": [tiktok]}}

invalid(path, message) := [{"code": "invalid_input", "path": path, "message": message}]

test_a_well_formed_report_has_no_report_error if {
	count(report.errors) == 0
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({"work_profile": false}, [notes, tiktok])
	count(report.errors) == 0
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [])
}

test_an_app_id_that_is_not_a_string_is_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [notes, {"id": ["com.zhiliaoapp.musically"]}])
	d.errors == invalid("report.apps[].id", "input.report.apps[].id must be a string in every app")
	d.allow == false
}

test_an_app_without_an_id_is_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [notes, {"name": "TikTok"}])
	d.errors == invalid("report.apps[].id", "input.report.apps[].id must be a string in every app")
	d.allow == false
}

test_apps_that_are_not_an_array_are_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, {"0": tiktok})
	d.errors == invalid("report.apps", "input.report.apps must be an array of apps")
	d.allow == false
}

test_an_unknown_platform_is_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({"platform": "Android"}, [tiktok])
	d.errors == invalid("report.device.platform", "input.report.device.platform must be one of android, ios, windows, macos, linux")
	d.allow == false
}

test_an_unknown_ownership_is_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({"ownership": "Corporate"}, [tiktok])
	d.errors == invalid("report.device.ownership", "input.report.device.ownership must be corporate or personal")
	d.allow == false
}

test_an_enrolment_flag_that_is_not_a_boolean_is_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({"ownership": "personal", "mdm": {"enrolled": "true"}}, [tiktok])
	d.errors == invalid("report.device.mdm.enrolled", "input.report.device.mdm.enrolled must be true or false")
	d.allow == false
}

test_a_work_profile_flag_that_is_not_a_boolean_is_an_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({"work_profile": "yes"}, [notes])
	d.errors == invalid("report.device.work_profile", "input.report.device.work_profile must be true or false when given")
	d.allow == false
}

test_a_name_that_is_not_a_string_does_not_hide_the_app if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [notes, {"id": "com.zhiliaoapp.musically", "name": 5}])
	d.violations == [{
		"rule": "eu-commission/tiktok", "ban": "tiktok", "app_id": "com.zhiliaoapp.musically",
		"message": concat("", [
			"TikTok (com.zhiliaoapp.musically) is banned on corporate devices of European Commission ",
			"from 2023-03-15T00:00:00Z: cybersecurity: protection against threats that could be exploited ",
			"against the organisation's corporate environment",
		]),
		"remediation": testdata.organizations["eu-commission"].rules.tiktok.remediation,
		"effective_from": "2023-03-15T00:00:00Z", "scope": "corporate", "enforcement": "deny",
	}] # no app_name: 5 is no name (the decision schema wants a string)
	d.allow == false
}

test_an_evidence_the_schema_does_not_know_is_not_passed_on if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [{"id": "com.zhiliaoapp.musically", "evidence": "hearsay"}])
	[object.get(v, "evidence", "(none)") | some v in d.violations] == ["(none)"]
}

test_a_ban_title_or_reason_that_is_not_a_string_does_not_hide_the_app if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [{"id": "com.zhiliaoapp.musically"}])
		with data.pyagent.bans.tiktok.title as 5
		with data.pyagent.bans.tiktok.reason as {"why": "security"}
	[v.message | some v in d.violations] == ["tiktok (com.zhiliaoapp.musically) is banned on corporate devices of European Commission from 2023-03-15T00:00:00Z: policy"]
	d.allow == false
}

test_an_organisation_title_that_is_not_a_string_does_not_hide_the_app if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone({}, [tiktok])
		with data.pyagent.organizations["eu-commission"].title as false
	[v.message | some v in d.violations] == ["TikTok (com.zhiliaoapp.musically) is banned on corporate devices of eu-commission from 2023-03-15T00:00:00Z: cybersecurity: protection against threats that could be exploited against the organisation's corporate environment"]
	d.allow == false
}

test_a_decisive_field_left_out_is_an_error if {
	missing := {
		"apps": invalid("report.apps", "input.report.apps must be an array of apps"),
		"platform": invalid("report.device.platform", "input.report.device.platform must be one of android, ios, windows, macos, linux"),
		"ownership": invalid("report.device.ownership", "input.report.device.ownership must be corporate or personal"),
		"mdm": invalid("report.device.mdm.enrolled", "input.report.device.mdm.enrolled must be true or false"),
	}
	every key, expected in missing {
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as phone_without(key)
		d.errors == expected
		d.allow == false
	}
}

test_an_enrolment_flag_under_another_name_is_an_error if {
	misspelt := object.union(object.remove(device, ["mdm"]), {"ownership": "personal", "mdm": {"Enrolled": true}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T09:30:00Z", "report": {"device": misspelt, "apps": [tiktok]}}
	d.errors == invalid("report.device.mdm.enrolled", "input.report.device.mdm.enrolled must be true or false")
	d.allow == false
}

# Each of the six checks passes or fails on these reports in every combination that matters: one field
# wrong or left out at a time, and a well-formed report.
checked_reports := [
	phone({}, [notes, tiktok]),
	phone({"work_profile": true}, []),
	phone({}, {"0": tiktok}),
	phone({}, [notes, {"id": 7}]),
	phone({}, [{"name": "no id"}]),
	phone({"platform": "Android"}, [tiktok]),
	phone({"ownership": "Corporate"}, [tiktok]),
	phone({"mdm": {"enrolled": "true"}}, [tiktok]),
	phone({"work_profile": "yes"}, [tiktok]),
	phone_without("apps"),
	phone_without("platform"),
	phone_without("ownership"),
	phone_without("mdm"),
]

every_check_passes if {
	report.apps_are_an_array
	report.ids_are_strings
	report.platform_is_known
	report.ownership_is_known
	report.enrolment_is_a_boolean
	report.work_profile_is_a_boolean
}

inline_verdict(case) if {
	report.well_formed
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as case
} else := false

named_verdict(case) if {
	every_check_passes
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as case
} else := false

test_the_inline_well_formed_body_agrees_with_the_six_checks if {
	verdicts := [[inline_verdict(case), named_verdict(case)] | some case in checked_reports]
	verdicts == array.concat([[true, true], [true, true]], [[false, false] | some _ in numbers.range(1, 11)])
}

# Every platform and ownership, and near misses of them: the sets spelt in the inline body are those
# of `platforms` and `ownerships`.
test_the_inline_sets_are_the_platforms_and_ownerships if {
	cases := [phone({"platform": p, "ownership": o}, [tiktok]) |
		some p in (report.platforms | {"Android", "ios ", ""})
		some o in (report.ownerships | {"Personal", "byod"})
	]
	count(cases) == 32
	every case in cases {
		inline_verdict(case) == named_verdict(case)
	}
	count([case | some case in cases; inline_verdict(case)]) == 10
}
