# METADATA
# title: Decision tests
# description: End-to-end decisions on the shipped data, one device per case.
package pyagent.decision_test

import data.pyagent.decision

at_in_force := "2023-03-16T09:30:00Z"

at_before := "2023-03-01T00:00:00Z"

tiktok := {"id": "com.zhiliaoapp.musically", "name": "TikTok"}

outlook := {"id": "com.microsoft.office.outlook", "name": "Outlook"}

device_report(org, platform, ownership, enrolled, apps) := {
	"schema_version": 1,
	"collected_at": "2023-03-16T09:30:00Z",
	"device": {
		"id": "device-under-test",
		"platform": platform,
		"ownership": ownership,
		"organization": org,
		"mdm": {"enrolled": enrolled},
	},
	"apps": apps,
}

# The policy input for one device at one instant.
case(org, platform, ownership, enrolled, apps, at) := {"at": at, "report": device_report(org, platform, ownership, enrolled, apps)}

# A decision reduced to what the tests assert exactly.
summary(d) := {
	"allow": d.allow,
	"violations": [[v.rule, v.app_id, v.scope] | some v in d.violations],
	"warnings": [[w.rule, w.app_id, w.reason] | some w in d.warnings],
	"exempted": [[e.rule, e.app_id, e.exemption.id] | some e in d.exempted],
	"errors": [e.code | some e in d.errors],
}

allowed := {"allow": true, "violations": [], "warnings": [], "exempted": [], "errors": []}

denied(rule, app_id, scope) := {
	"allow": false,
	"violations": [[rule, app_id, scope]],
	"warnings": [],
	"exempted": [],
	"errors": [],
}

test_contract_example_full_document if {
	d := decision with input as case(
		"eu-commission", "android", "personal", true, [{
			"id": "com.zhiliaoapp.musically", "name": "TikTok", "version": "28.1.3", "source": "android-pm",
		}],
		at_in_force,
	)
	d == {
		"device_id": "device-under-test",
		"evaluated_at": "2023-03-16T09:30:00Z",
		"organization": "eu-commission",
		"allow": false,
		"errors": [],
		"exempted": [],
		"warnings": [],
		"policy_revision": data.pyagent.revision,
		"violations": [{
			"rule": "eu-commission/tiktok",
			"ban": "tiktok",
			"app_id": "com.zhiliaoapp.musically",
			"app_name": "TikTok",
			"effective_from": "2023-03-15T00:00:00Z",
			"enforcement": "deny",
			"scope": "personal-enrolled",
			"message": concat("", [
				"TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission ",
				"from 2023-03-15T00:00:00Z: cybersecurity: protection against threats that could be exploited ",
				"against the organisation's corporate environment",
			]),
			"remediation": data.pyagent.organizations["eu-commission"].rules.tiktok.remediation,
		}],
	}
}

test_policy_revision_is_the_builds_when_a_bundle_names_one if {
	d := decision with input as case("eu-commission", "android", "corporate", false, [], at_in_force)
	d.policy_revision == data.pyagent.revision
	built := decision with input as case("eu-commission", "android", "corporate", false, [], at_in_force)
		with data.pyagent_build as {"revision": "rev-50"}
	built.policy_revision == "rev-50"
}

# eu-commission: corporate and personal-enrolled.
test_commission_corporate_with_tiktok_denied if {
	d := decision with input as case("eu-commission", "android", "corporate", true, [tiktok], at_in_force)
	summary(d) == denied("eu-commission/tiktok", tiktok.id, "corporate")
}

test_commission_corporate_without_tiktok_allowed if {
	d := decision with input as case("eu-commission", "android", "corporate", true, [outlook], at_in_force)
	summary(d) == allowed
}

test_commission_personal_not_enrolled_with_work_apps_allowed if {
	d := decision with input as case("eu-commission", "android", "personal", false, [tiktok, outlook], at_in_force)
	summary(d) == allowed
}

# eu-council: corporate and personal-with-work-apps.
test_council_personal_with_outlook_denied if {
	d := decision with input as case("eu-council", "android", "personal", false, [tiktok, outlook], at_in_force)
	s := summary(d)
	s == denied("eu-council/tiktok", tiktok.id, "personal-with-work-apps")
}

test_council_personal_enrolled_without_work_apps_allowed if {
	d := decision with input as case("eu-council", "android", "personal", true, [tiktok], at_in_force)
	summary(d) == allowed
}

test_council_corporate_denied if {
	d := decision with input as case("eu-council", "ios", "corporate", true, [tiktok], at_in_force)
	summary(d) == denied("eu-council/tiktok", tiktok.id, "corporate")
}

test_council_work_profile_counts_as_work_apps if {
	phone := device_report("eu-council", "android", "personal", false, [tiktok])
	report := object.union(phone, {"device": object.union(phone.device, {"work_profile": true})})
	d := decision with input as {"at": at_in_force, "report": report}
	summary(d) == denied("eu-council/tiktok", tiktok.id, "personal-with-work-apps")
}

# eeas: the Commission's rules, inherited, plus personal-with-work-apps.
test_eeas_inherits_commission_corporate_rule if {
	d := decision with input as case("eeas", "android", "corporate", true, [tiktok], at_in_force)
	summary(d) == denied("eu-commission/tiktok", tiktok.id, "corporate")
}

test_eeas_inherits_commission_personal_enrolled_rule if {
	d := decision with input as case("eeas", "android", "personal", true, [tiktok], at_in_force)
	summary(d) == denied("eu-commission/tiktok", tiktok.id, "personal-enrolled")
}

test_eeas_personal_ios_with_teams_and_douyin_denied if {
	apps := [{"id": "com.microsoft.skype.teams"}, {"id": "com.ss.iphone.ugc.Aweme"}]
	d := decision with input as case("eeas", "ios", "personal", false, apps, at_in_force)
	s := summary(d)
	s == denied("eeas/tiktok-work-apps", "com.ss.iphone.ugc.Aweme", "personal-with-work-apps")
}

test_eeas_personal_without_work_apps_allowed if {
	d := decision with input as case("eeas", "android", "personal", false, [tiktok], at_in_force)
	summary(d) == allowed
}

# eu-parliament: no ban in force.
test_parliament_corporate_with_tiktok_allowed if {
	d := decision with input as case("eu-parliament", "android", "corporate", true, [tiktok], at_in_force)
	summary(d) == allowed
}

# us-federal: government-owned devices only.
test_us_federal_corporate_windows_denied if {
	app := {"id": "BytedancePte.Ltd.TikTok_6yccndn6064se"}
	d := decision with input as case("us-federal", "windows", "corporate", true, [app], at_in_force)
	s := summary(d)
	s == denied("us-federal/tiktok", app.id, "corporate")
}

test_us_federal_personal_enrolled_allowed if {
	d := decision with input as case("us-federal", "android", "personal", true, [tiktok, outlook], at_in_force)
	summary(d) == allowed
}

test_us_federal_in_force_since_december_2022 if {
	d := decision with input as case("us-federal", "android", "corporate", true, [tiktok], "2023-01-05T00:00:00Z")
	s := summary(d)
	s == denied("us-federal/tiktok", tiktok.id, "corporate")
}

# india: every device.
test_india_personal_unmanaged_lite_denied if {
	app := {"id": "com.zhiliaoapp.musically.go"}
	d := decision with input as case("india", "android", "personal", false, [app], at_in_force)
	s := summary(d)
	s == denied("india/tiktok", app.id, "all")
}

test_india_without_tiktok_allowed if {
	d := decision with input as case("india", "android", "personal", false, [outlook], at_in_force)
	summary(d) == allowed
}

# Effective dates.
test_before_effective_from_is_a_warning if {
	d := decision with input as case("eu-commission", "android", "corporate", true, [tiktok], at_before)
	summary(d) == {
		"allow": true, "violations": [], "exempted": [], "errors": [],
		"warnings": [["eu-commission/tiktok", tiktok.id, "not_yet_effective"]],
	}
	d.warnings[0].effective_from == "2023-03-15T00:00:00Z"
}

test_exactly_at_effective_from_is_a_violation if {
	d := decision with input as case("eu-commission", "android", "corporate", true, [tiktok], "2023-03-15T00:00:00Z")
	s := summary(d)
	s == denied("eu-commission/tiktok", tiktok.id, "corporate")
}

test_one_nanosecond_before_effective_from_is_a_warning if {
	d := decision with input as case("eu-commission", "android", "corporate", true, [tiktok], "2023-03-14T23:59:59.999999999Z")
	s := summary(d)
	s.allow == true
	s.warnings == [["eu-commission/tiktok", tiktok.id, "not_yet_effective"]]
}

test_effective_from_compared_as_instants_across_offsets if {
	# 01:00+01:00 is 00:00Z, the effective instant itself.
	d := decision with input as case("eu-commission", "android", "corporate", true, [tiktok], "2023-03-15T01:00:00+01:00")
	s := summary(d)
	s == denied("eu-commission/tiktok", tiktok.id, "corporate")
}

# Unknown and missing organisation, bad time: machine-readable errors, never allow.
test_unknown_organization_is_an_error if {
	d := decision with input as case("eu-senate", "android", "corporate", true, [], at_in_force)
	summary(d) == {"allow": false, "violations": [], "warnings": [], "exempted": [], "errors": ["unknown_organization"]}
	d.errors[0].organization == "eu-senate"
}

test_missing_organization_is_an_error if {
	full := device_report("x", "android", "corporate", true, [])
	report := object.union(object.remove(full, ["device"]), {"device": object.remove(full.device, ["organization"])})
	d := decision with input as {"at": at_in_force, "report": report}
	summary(d) == {"allow": false, "violations": [], "warnings": [], "exempted": [], "errors": ["missing_organization"]}
	d.organization == null
}

test_missing_time_is_an_error if {
	d := decision with input as {"report": device_report("india", "android", "corporate", true, [])}
	d.evaluated_at == null
	summary(d) == {"allow": false, "violations": [], "warnings": [], "exempted": [], "errors": ["invalid_time"]}
}

test_malformed_time_is_an_error if {
	d := decision with input as {"at": "16/03/2023", "report": device_report("india", "android", "corporate", true, [])}
	[e.code | some e in d.errors] == ["invalid_time"]
	d.allow == false
}

test_data_loaded_under_the_wrong_root_is_one_clear_error if {
	d := decision with input as case("eu-commission", "android", "corporate", true, [], at_in_force)
		with data.pyagent.lib.layout.loaded as false
		with data.data.pyagent as {"organizations": {}}
	d.allow == false
	[e.code | some e in d.errors] == ["misconfigured_data_root"]
}

test_a_build_revision_that_is_not_text_falls_back_to_the_datas if {
	d := decision with input as case("eu-commission", "android", "corporate", false, [], at_in_force)
		with data.pyagent_build as {"revision": 5}
	d.policy_revision == data.pyagent.revision
}

# domain.md's dates: the US Senate bill from 2022-12-29, India's ban since 2020-06-29

test_us_federal_before_2022_12_29_is_a_warning if {
	d := decision with input as case("us-federal", "android", "corporate", true, [tiktok], "2022-12-28T23:59:59Z")
	summary(d) == {"allow": true, "violations": [], "exempted": [], "errors": [], "warnings": [["us-federal/tiktok", tiktok.id, "not_yet_effective"]]}
	[w.effective_from | some w in d.warnings] == ["2022-12-29T00:00:00Z"]
}

test_india_before_2020_06_29_is_a_warning if {
	d := decision with input as case("india", "android", "personal", false, [tiktok], "2020-06-28T23:59:59Z")
	summary(d) == {"allow": true, "violations": [], "exempted": [], "errors": [], "warnings": [["india/tiktok", tiktok.id, "not_yet_effective"]]}
	[w.effective_from | some w in d.warnings] == ["2020-06-29T00:00:00Z"]
}

test_every_shipped_work_app_puts_a_council_personal_phone_in_scope if {
	work := {
		"android": [
			"com.microsoft.office.outlook", "com.microsoft.teams", "com.cisco.webex.meetings",
			"com.microsoft.windowsintune.companyportal",
		],
		"ios": ["com.microsoft.Office.Outlook", "com.microsoft.skype.teams"],
	}
	every platform, ids in work {
		every id in ids {
			d := decision with input as case("eu-council", platform, "personal", false, [tiktok, {"id": id}], at_in_force)
			summary(d) == denied("eu-council/tiktok", tiktok.id, "personal-with-work-apps")
		}
	}
}

test_the_shipped_data_holds_the_domains if {
	# every identifier and rule of domain.md; an author's copy may add more (the ban list grows by
	# editing data): tests/policy_data/test_shipped_domain.py holds the shipped data to exactly these
	domain_ids := {
		"android": ["com.zhiliaoapp.musically", "com.ss.android.ugc.trill", "com.zhiliaoapp.musically.go", "com.ss.android.ugc.aweme"],
		"ios": ["com.zhiliaoapp.musically", "com.ss.iphone.ugc.Aweme", "835599320", "id835599320"],
		"windows": ["BytedancePte.Ltd.TikTok_6yccndn6064se", "9NH2GPH4JZS4"],
	}
	every platform, ids in domain_ids {
		every id in ids {
			id in data.pyagent.bans.tiktok.apps[platform]
		}
	}
	rules := {[name, object.get(org, "inherits", []), id, r.ban, r.scopes, r.effective_from, object.get(r, "enforcement", "deny")] |
		some name, org in data.pyagent.organizations
		some id, r in org.rules
	}
	every rule in {
		["eu-commission", [], "tiktok", "tiktok", ["corporate", "personal-enrolled"], "2023-03-15T00:00:00Z", "deny"],
		["eu-council", [], "tiktok", "tiktok", ["corporate", "personal-with-work-apps"], "2023-03-15T00:00:00Z", "deny"],
		["eeas", ["eu-commission"], "tiktok-work-apps", "tiktok", ["personal-with-work-apps"], "2023-03-15T00:00:00Z", "deny"],
		["us-federal", [], "tiktok", "tiktok", ["corporate"], "2022-12-29T00:00:00Z", "deny"],
		["india", [], "tiktok", "tiktok", ["all"], "2020-06-29T00:00:00Z", "deny"],
	} {
		rule in rules
	}
	every name in {"eu-commission", "eu-council", "eeas", "eu-parliament", "us-federal", "india"} {
		data.pyagent.organizations[name]
	}
}

test_shipped_data_has_no_errors_for_any_organization if {
	every org, _ in data.pyagent.organizations {
		d := decision with input as case(org, "android", "corporate", true, [], "2023-03-16T09:30:00Z")
		d.errors == []
	}
}
