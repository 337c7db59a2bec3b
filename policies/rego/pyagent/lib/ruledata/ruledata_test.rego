# METADATA
# title: Policy data error tests
# description: Each mistake in the data of a rule in force, a ban or work apps, at its path; none where no rule rests on it.
package pyagent.lib.ruledata_test

import data.pyagent.decision
import data.pyagent.lib.breaches_test.commission_rule
import data.pyagent.lib.breaches_test.report
import data.pyagent.lib.breaches_test.tiktok
import data.pyagent.lib.testdata_test as testdata

test_unknown_enforcement_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"enforcement": "block"})
	d.allow == false
	d.errors == [{"code": "invalid_policy_data", "message": "rule eu-commission/tiktok has enforcement \"block\"; expected deny, warn or dryrun", "path": "pyagent.organizations.eu-commission.rules.tiktok.enforcement"}]
}

test_unknown_scope_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"scopes": ["corporate", "contractors"]})
	d.errors == [{"code": "invalid_policy_data", "message": "rule eu-commission/tiktok has unknown scope \"contractors\"", "path": "pyagent.organizations.eu-commission.rules.tiktok.scopes"}]
	d.allow == false
}

test_empty_scopes_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"scopes": []})
	d.errors == [{"code": "invalid_policy_data", "message": "rule eu-commission/tiktok names no scopes", "path": "pyagent.organizations.eu-commission.rules.tiktok.scopes"}]
	d.allow == false
}

test_unknown_ban_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"ban": "tiktok2"})
	d.errors == [{"code": "invalid_policy_data", "message": "rule eu-commission/tiktok names unknown ban \"tiktok2\"", "path": "pyagent.organizations.eu-commission.rules.tiktok.ban"}]
	d.allow == false
}

test_bad_effective_from_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"effective_from": "15 March 2023"})
	d.errors == [{"code": "invalid_policy_data", "message": "rule eu-commission/tiktok needs effective_from as an RFC 3339 timestamp", "path": "pyagent.organizations.eu-commission.rules.tiktok.effective_from"}]
	d.allow == false
}

test_scopes_given_as_one_string_is_a_data_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"scopes": "corporate"})
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.organizations.eu-commission.rules.tiktok.scopes",
		"message": "rule eu-commission/tiktok has scopes \"corporate\"; expected a list of scopes",
	}]
	d.allow == false
}

test_ban_identifiers_given_as_one_string_is_a_data_error if {
	bans := object.union(testdata.bans, {"tiktok": {"apps": {"android": "com.zhiliaoapp.musically"}}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.bans as bans
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.bans.tiktok.apps.android",
		"message": "ban tiktok lists its android identifiers as \"com.zhiliaoapp.musically\"; expected a list of identifiers",
	}]
	d.allow == false
}

test_ban_identifiers_as_a_list_on_another_platform_are_no_error if {
	bans := object.union(testdata.bans, {"tiktok": {"apps": {"ios": "com.zhiliaoapp.musically"}}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.bans as bans
	d.errors == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
}

test_work_apps_given_as_one_string_is_a_data_error if {
	phone := {
		"at": "2023-03-16T09:30:00Z",
		"report": {
			"device": {
				"id": "d-1", "platform": "android", "ownership": "personal",
				"organization": "eeas", "mdm": {"enrolled": false},
			},
			"apps": [tiktok, {"id": "com.microsoft.teams"}],
		},
	}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone
		with data.pyagent.work_apps as {"android": "com.microsoft.teams"}
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.work_apps.android",
		"message": "work apps for android at pyagent.work_apps are \"com.microsoft.teams\"; expected a list of identifiers",
	}]
	d.allow == false
}

test_ban_identifiers_not_per_platform_is_a_data_error if {
	bans := object.union(testdata.bans, {"tiktok": {"apps": ["com.zhiliaoapp.musically"]}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.bans as bans
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.bans.tiktok.apps",
		"message": "ban tiktok lists its identifiers as [\"com.zhiliaoapp.musically\"]; expected a list of identifiers per platform",
	}]
	d.allow == false
}

test_an_organisations_work_apps_given_as_one_string_is_a_data_error if {
	phone := {
		"at": "2023-03-16T09:30:00Z",
		"report": {
			"device": {
				"id": "d-1", "platform": "android", "ownership": "personal",
				"organization": "eeas", "mdm": {"enrolled": false},
			},
			"apps": [tiktok, {"id": "com.example.work"}],
		},
	}
	orgs := object.union(testdata.organizations, {"eeas": {"work_apps": {"android": "com.example.work"}}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone with data.pyagent.organizations as orgs
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.organizations.eeas.work_apps.android",
		"message": "work apps for android at pyagent.organizations.eeas.work_apps are \"com.example.work\"; expected a list of identifiers",
	}]
	d.allow == false
}

test_work_apps_not_per_platform_is_a_data_error if {
	# a personal EEAS phone: its rule rests on work apps, listed as one list, not per platform
	phone := {"at": "2023-03-16T09:30:00Z", "report": {
		"device": {
			"id": "d-1", "platform": "android", "ownership": "personal",
			"organization": "eeas", "mdm": {"enrolled": false},
		},
		"apps": [tiktok],
	}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone with data.pyagent.work_apps as ["com.microsoft.teams"]
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.work_apps",
		"message": "work apps at pyagent.work_apps are [\"com.microsoft.teams\"]; expected a list of identifiers per platform",
	}]
	d.allow == false
}

test_malformed_work_apps_are_no_error_where_no_rule_rests_on_them if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [tiktok])
		with data.pyagent.work_apps as ["com.microsoft.teams"]
	d.errors == []
	[v.rule | some v in d.violations] == ["india/tiktok"]
}

test_identifiers_under_an_unknown_platform_are_a_data_error if {
	# "Android" for "android": every Android device would be allowed without a word
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.bans.tiktok.apps as {"Android": ["com.zhiliaoapp.musically"]}
	d.allow == false
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.bans.tiktok.apps",
		"message": "ban tiktok lists identifiers for unknown platform \"Android\"; expected one of android, ios, linux, macos, windows",
	}]
}

test_a_rule_that_is_not_an_object_is_a_data_error if {
	# null, a string or a list names no ban: the TikTok phone allowed without a word
	every rule in [null, "tiktok", []] {
		orgs := object.union(testdata.organizations, {"eu-commission": {"title": "European Commission", "inherits": [], "rules": {"tiktok": rule}}})
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as report("eu-commission", "android", "corporate", [tiktok]) with data.pyagent.organizations as orgs
		d.allow == false
		d.errors == [{
			"code": "invalid_policy_data",
			"path": "pyagent.organizations.eu-commission.rules.tiktok",
			"message": concat("", ["rule eu-commission/tiktok is ", json.marshal(rule), "; expected an object with its ban, scopes and effective_from"]),
		}]
	}
}

test_a_ban_that_is_not_an_object_is_a_data_error if {
	every ban in [null, "com.zhiliaoapp.musically", ["com.zhiliaoapp.musically"]] {
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as report("eu-commission", "android", "corporate", [tiktok])
			with data.pyagent.bans as object.union(testdata.bans, {"tiktok": ban})
		d.allow == false
		d.errors == [{
			"code": "invalid_policy_data",
			"path": "pyagent.bans.tiktok",
			"message": concat("", ["ban tiktok is ", json.marshal(ban), "; expected an object with its title and apps"]),
		}]
	}
}

test_a_ban_without_apps_is_a_data_error if {
	every ban in [{"title": "TikTok", "reason": "cybersecurity"}, {"title": "TikTok", "apps": {}}] {
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as report("eu-commission", "android", "corporate", [tiktok])
			with data.pyagent.bans.tiktok as ban
		d.allow == false
		d.errors == [{
			"code": "invalid_policy_data",
			"path": "pyagent.bans.tiktok.apps",
			"message": "ban tiktok lists no identifiers (apps); expected a list of identifiers per platform",
		}]
	}
}

test_a_banned_identifier_that_is_not_text_is_a_data_error if {
	# a nested list (a YAML slip) or a number matches no app
	every id in [["com.zhiliaoapp.musically"], 5] {
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as report("eu-commission", "android", "corporate", [tiktok])
			with data.pyagent.bans.tiktok.apps as {"android": [id], "ios": ["com.zhiliaoapp.musically"]}
		d.allow == false
		d.errors == [{
			"code": "invalid_policy_data",
			"path": "pyagent.bans.tiktok.apps.android",
			"message": concat("", ["ban tiktok lists ", json.marshal(id), " among its android identifiers; expected identifiers as text"]),
		}]
	}
}

test_an_identifier_that_is_not_text_on_another_platform_is_no_error if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.bans.tiktok.apps as {"android": ["com.zhiliaoapp.musically"], "ios": [5]}
	d.errors == []
	[v.rule | some v in d.violations] == ["eu-commission/tiktok"]
}

test_a_work_app_that_is_not_text_is_a_data_error if {
	# a personal Council phone with Outlook: its rule rests on work apps, one listed as a nested list
	phone := {"at": "2023-03-16T09:30:00Z", "report": {
		"device": {
			"id": "d-1", "platform": "android", "ownership": "personal",
			"organization": "eu-council", "mdm": {"enrolled": false},
		},
		"apps": [tiktok, {"id": "com.microsoft.office.outlook"}],
	}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as phone with data.pyagent.work_apps as {"android": [["com.microsoft.office.outlook"]]}
	d.allow == false
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.work_apps.android",
		"message": "work apps for android at pyagent.work_apps list [\"com.microsoft.office.outlook\"]; expected identifiers as text",
	}]
}
