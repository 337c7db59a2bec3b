# METADATA
# title: Exemption tests
# description: Exemptions come from policy data, expire at `until`, and match device, organisation and ban.
package pyagent.lib.exemptions_test

import data.pyagent.decision
import data.pyagent.lib.testdata_test as testdata

tiktok := {"id": "com.zhiliaoapp.musically", "name": "TikTok"}

commission_phone := {
	"at": "2023-03-16T09:30:00Z",
	"report": {
		"schema_version": 1,
		"collected_at": "2023-03-16T09:30:00Z",
		"device": {
			"id": "fr-brussels-0042",
			"platform": "android",
			"ownership": "personal",
			"organization": "eu-commission",
			"mdm": {"enrolled": true},
		},
		"apps": [tiktok],
	},
}

press_office := {
	"device_id": "fr-brussels-0042",
	"organization": "eu-commission",
	"ban": "tiktok",
	"until": "2023-06-30T00:00:00Z",
	"reason": "official communications account",
	"approved_by": "DIGIT.S",
}

exemption(patch) := {"EX-2023-001": object.union(press_office, patch)}

test_exemption_in_force_waives_the_violation if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone with data.pyagent.exemptions as exemption({})
	d.allow == true
	d.violations == []
	[[e.rule, e.app_id] | some e in d.exempted] == [["eu-commission/tiktok", "com.zhiliaoapp.musically"]]
	d.exempted[0].exemption == {
		"id": "EX-2023-001",
		"reason": "official communications account",
		"until": "2023-06-30T00:00:00Z",
		"approved_by": "DIGIT.S",
	}
}

test_exemption_until_equal_to_evaluation_time_is_expired if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"until": "2023-03-16T09:30:00Z"})
	d.allow == false
	d.exempted == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
	d.violations[0].expired_exemptions == ["EX-2023-001"]
}

test_exemption_one_second_after_evaluation_time_is_in_force if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"until": "2023-03-16T09:30:01Z"})
	d.allow == true
	[e.exemption.id | some e in d.exempted] == ["EX-2023-001"]
}

test_expired_exemption_is_ignored if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"until": "2023-03-01T00:00:00Z"})
	d.allow == false
	d.exempted == []
	d.violations[0].expired_exemptions == ["EX-2023-001"]
}

test_exemption_for_another_device_does_not_apply if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"device_id": "fr-brussels-0043"})
	d.allow == false
	d.exempted == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
	not d.violations[0].expired_exemptions
}

test_exemption_for_another_ban_does_not_apply if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"ban": "capcut"})
	d.allow == false
	d.exempted == []
	d.errors == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
}

test_exemption_for_another_organization_does_not_apply if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"organization": "eu-council"})
	d.allow == false
	d.exempted == []
	d.errors == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
}

test_report_cannot_exempt_itself if {
	# Everything a report could try: top-level, device-level and extra fields.
	self_exemption := {"EX-SELF": press_office}
	crafted := object.union(commission_phone, {
		"report": {
			"exemptions": self_exemption,
			"extra": {"exemptions": self_exemption},
			"device": {"exempt": true, "exemptions": self_exemption},
		},
		"exemptions": self_exemption,
		"data": {"pyagent": {"exemptions": self_exemption}},
	})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as crafted
		with data.pyagent.exemptions as {} # none in the data, whatever an author adds there
	d.allow == false
	d.exempted == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
}

test_exemption_without_valid_until_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as exemption({"until": "forever"})
	d.allow == false
	[[e.code, e.path] | some e in d.errors] == [["invalid_policy_data", "pyagent.exemptions.EX-2023-001.until"]]
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
	d.exempted == []
}

test_exemption_without_reason_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as {"EX-2023-002": object.remove(press_office, ["reason"])}
	d.allow == false
	d.errors == [{"code": "invalid_policy_data", "message": "exemption EX-2023-002 needs reason as a string", "path": "pyagent.exemptions.EX-2023-002.reason"}]
}

test_two_exemptions_in_force_the_smallest_id_is_reported if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as {"EX-B": press_office, "EX-A": object.remove(press_office, ["approved_by"])}
	d.allow == true
	d.exempted[0].exemption == {
		"id": "EX-A", "reason": "official communications account",
		"until": "2023-06-30T00:00:00Z", "approved_by": null,
	}
}

test_exemption_does_not_touch_a_warning if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as object.union(commission_phone, {"at": "2023-03-01T00:00:00Z"})
		with data.pyagent.exemptions as exemption({})
	d.allow == true
	d.exempted == []
	[w.reason | some w in d.warnings] == ["not_yet_effective"]
}

test_exemption_without_until_is_a_policy_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as {"EX-2023-001": object.remove(press_office, ["until"])}
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.exemptions.EX-2023-001.until",
		"message": "exemption EX-2023-001 needs `until` as an RFC 3339 timestamp",
	}]
	d.allow == false
}

test_a_malformed_exemption_leaves_the_violation if {
	# an exemption without its reason waives nothing: the violation stays, beside the data error
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as commission_phone
		with data.pyagent.exemptions as {"EX-2023-002": object.remove(press_office, ["reason"])}
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
	d.exempted == []
}

test_exemptions_not_keyed_by_id_are_a_data_error if {
	# a list (or null) of exemptions: no waiver, the violation stays and the data is named (one key in
	# the listed object: the embedded engine's json.marshal keeps an object's key order, OPA's sorts it)
	every listed in [[{"ban": "tiktok"}], null] {
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as commission_phone with data.pyagent.exemptions as listed
		d.allow == false
		[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
		d.exempted == []
		shown := {true: "null", false: "[{\"ban\":\"tiktok\"}]"}[listed == null]
		d.errors == [{
			"code": "invalid_policy_data",
			"message": concat("", ["exemptions are listed as ", shown, "; expected exemptions keyed by their id"]),
			"path": "pyagent.exemptions",
		}]
	}
}
