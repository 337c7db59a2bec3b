# METADATA
# title: Breach tests
# description: Enforcement modes, platforms, and bans added by data.
package pyagent.lib.breaches_test

import data.pyagent.decision
import data.pyagent.lib.breaches
import data.pyagent.lib.matching_test
import data.pyagent.lib.testdata_test as testdata

report(org, platform, ownership, apps) := {
	"at": "2023-03-16T09:30:00Z",
	"report": {
		"device": {
			"id": "d-1", "platform": platform, "ownership": ownership,
			"organization": org, "mdm": {"enrolled": true},
		},
		"apps": apps,
	},
}

index := matching_test.rego_index

commission_rule(patch) := object.union(testdata.organizations, {"eu-commission": {
	"title": "European Commission",
	"inherits": [],
	"rules": {"tiktok": object.union(testdata.organizations["eu-commission"].rules.tiktok, patch)},
}})

tiktok := {"id": "com.zhiliaoapp.musically"}

test_enforcement_deny_is_a_violation if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
	[[v.rule, v.enforcement] | some v in d.violations] == [["eu-commission/tiktok", "deny"]]
	d.allow == false
}

test_enforcement_warn_is_a_warning_and_allows if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"enforcement": "warn"})
	d.allow == true
	d.violations == []
	[[w.rule, w.reason, w.enforcement] | some w in d.warnings] == [["eu-commission/tiktok", "enforcement_warn", "warn"]]
}

test_enforcement_dryrun_is_a_warning_and_allows if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"enforcement": "dryrun"})
	d.allow == true
	[[w.rule, w.reason] | some w in d.warnings] == [["eu-commission/tiktok", "enforcement_dryrun"]]
}

test_missing_enforcement_defaults_to_deny if {
	orgs := {"x": {"inherits": [], "rules": {"r": {"ban": "tiktok", "scopes": ["all"]}}}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("x", "android", "personal", [tiktok]) with data.pyagent.organizations as orgs
	[[v.rule, v.enforcement, v.effective_from] | some v in d.violations] == [["x/r", "deny", null]]
	d.violations[0].message == "TikTok (com.zhiliaoapp.musically) is banned on all devices of x: cybersecurity: protection against threats that could be exploited against the organisation's corporate environment"
	d.violations[0].remediation == "Uninstall TikTok (com.zhiliaoapp.musically) from this device."
}

test_every_shipped_tiktok_android_id_is_banned if {
	ids := testdata.bans.tiktok.apps.android
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [{"id": id} | some id in ids])
	count(d.violations) == 4
	{v.app_id | some v in d.violations} == {
		"com.zhiliaoapp.musically", "com.ss.android.ugc.trill",
		"com.zhiliaoapp.musically.go", "com.ss.android.ugc.aweme",
	}
}

test_ios_tiktok_and_douyin_are_banned if {
	apps := [{"id": "com.zhiliaoapp.musically"}, {"id": "com.ss.iphone.ugc.Aweme"}, {"id": "com.apple.mobilesafari"}]
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "ios", "personal", apps)
	[v.app_id | some v in d.violations] == ["com.ss.iphone.ugc.Aweme", "com.zhiliaoapp.musically"]
}

test_windows_store_id_is_banned if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("us-federal", "windows", "corporate", [{"id": "9NH2GPH4JZS4"}])
	[v.app_id | some v in d.violations] == ["9NH2GPH4JZS4"]
}

test_android_id_on_windows_is_not_banned if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("us-federal", "windows", "corporate", [tiktok])
	[d.allow, d.violations, d.warnings, d.exempted, d.errors] == [true, [], [], [], []]
}

test_capcut_is_not_banned_by_any_shipped_organization if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "corporate", [{"id": "com.lemon.lvoverseas"}, {"id": "com.bd.nproject"}])
	d.allow == true
	d.violations == []
}

test_display_name_evidence_is_carried_to_the_violation if {
	app := {"id": "com.zhiliaoapp.musically", "name": "TikTok", "evidence": "display_name"}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [app])
	[[v.app_id, v.app_name, v.evidence] | some v in d.violations] == [["com.zhiliaoapp.musically", "TikTok", "display_name"]]
	[v.message | some v in d.violations] == [concat("", [
		"TikTok (com.zhiliaoapp.musically) is banned on all devices of Government of India from 2020-06-29T00:00:00Z: ",
		"national security: TikTok is blocked in India since 2020",
		" (matched from a display name, not a package ID: weaker evidence)",
	])]
}

test_a_match_on_the_package_id_says_nothing_of_evidence if {
	app := {"id": "com.zhiliaoapp.musically", "name": "TikTok"}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [app])
	[v.message | some v in d.violations] == [concat("", [
		"TikTok (com.zhiliaoapp.musically) is banned on all devices of Government of India from 2020-06-29T00:00:00Z: ",
		"national security: TikTok is blocked in India since 2020",
	])]
}

test_a_rule_without_a_reason_of_its_own_gives_its_bans if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
	[v.message | some v in d.violations] == [concat("", [
		"TikTok (com.zhiliaoapp.musically) is banned on corporate devices of European Commission from 2023-03-15T00:00:00Z: ",
		testdata.bans.tiktok.reason,
	])]
}

test_a_reason_that_is_not_text_falls_back_to_the_bans if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"reason": 7})
	[v.message | some v in d.violations] == [concat("", [
		"TikTok (com.zhiliaoapp.musically) is banned on corporate devices of European Commission from 2023-03-15T00:00:00Z: ",
		testdata.bans.tiktok.reason,
	])]
}

test_a_scope_resting_on_work_apps_known_by_name_says_so if {
	by_id := {"id": "com.microsoft.office.outlook", "name": "Microsoft Outlook"}
	by_name := object.union(by_id, {"evidence": "display_name"})
	plain := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-council", "android", "personal", [by_id, tiktok])
	weaker := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-council", "android", "personal", [by_name, tiktok])
	[v.scope | some v in weaker.violations] == ["personal-with-work-apps"]
	[v.message | some v in weaker.violations] == [concat("", [
		plain.violations[0].message,
		" (the device's work apps were matched from display names, not package IDs: weaker evidence)",
	])]
}

test_one_work_app_by_id_is_evidence_enough if {
	by_name := {"id": "com.microsoft.teams", "name": "Microsoft Teams", "evidence": "display_name"}
	outlook := {"id": "com.microsoft.office.outlook"}
	both := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-council", "android", "personal", [by_name, outlook, tiktok])
	alone := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-council", "android", "personal", [outlook, tiktok])
	[v.message | some v in both.violations] == [v.message | some v in alone.violations]
}

test_new_ban_is_a_data_edit if {
	bans := object.union(testdata.bans, {"telegram": {
		"title": "Telegram", "reason": "data protection",
		"apps": {"android": ["org.telegram.messenger"]},
	}})

	# a new organisation of its own (a rule an author adds to a shipped one must not change this test)
	orgs := object.union(testdata.organizations, {"test-new-org": {
		"title": "A new organisation", "inherits": [],
		"rules": {"telegram": {"ban": "telegram", "scopes": ["corporate"], "effective_from": "2023-03-01T00:00:00Z"}},
	}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("test-new-org", "android", "corporate", [{"id": "org.telegram.messenger"}])
		with data.pyagent.bans as bans
		with data.pyagent.organizations as orgs
	[[v.rule, v.ban, v.scope] | some v in d.violations] == [["test-new-org/telegram", "telegram", "corporate"]]
}

test_adding_capcut_to_the_commission_is_a_data_edit if {
	orgs := object.union(testdata.organizations, {"eu-commission": {"rules": {"capcut": {
		"ban": "capcut", "scopes": ["corporate"], "effective_from": "2023-03-20T00:00:00Z",
	}}}})
	capcut := {"id": "com.lemon.lvoverseas"}
	before := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [capcut])
		with data.pyagent.organizations as orgs
	later := object.union(report("eu-commission", "android", "corporate", [capcut]), {"at": "2023-03-20T00:00:00Z"})
	after := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as later
		with data.pyagent.organizations as orgs
	[w.reason | some w in before.warnings] == ["not_yet_effective"]
	before.allow == true
	[v.rule | some v in after.violations] == ["eu-commission/capcut"]
}

test_the_shipped_index_gives_the_same_decisions if {
	apps := [
		{"id": "com.zhiliaoapp.musically"}, {"id": "com.ss.iphone.ugc.aweme"}, {"id": "org.example"},
		{"id": "bytedancepte.ltd.tiktok_6yccndn6064se"}, {"id": "ByteDance.CapCut"}, {"id": "com.bd.nproject"},
	]
	every org in ["india", "eu-commission", "eeas", "us-federal", "eu-parliament"] {
		every platform in ["android", "ios", "windows", "macos", "linux"] {
			built := decision
				with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
				with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
				with input as report(org, platform, "corporate", apps)
			indexed := decision
				with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
				with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
				with input as report(org, platform, "corporate", apps)
				with data.pyagent_index as index
			built == indexed
		}
	}
}

test_a_small_key_table_is_read_whole_with_the_same_decisions if {
	fillers := [{"id": concat(".", ["org.example", x])} | some x in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t"]]
	apps := array.concat(fillers, [tiktok, {"id": "com.lemon.lvoverseas"}, tiktok])
	the_input := report("eu-commission", "android", "corporate", apps)
	breaches.read_whole_table
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as the_input with data.pyagent_index as index
	not breaches.read_whole_table
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent_index as index
	indexed := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as the_input with data.pyagent_index as index
	decision == indexed
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as the_input
	[[v.rule, v.app_id] | some v in indexed.violations] == [["eu-commission/tiktok", "com.zhiliaoapp.musically"]]
}

test_the_shipped_index_finds_tiktok_on_windows if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "windows", "personal", [{"id": "BytedancePte.Ltd.TikTok"}])
		with data.pyagent_index as index
	[[v.rule, v.app_id] | some v in d.violations] == [["india/tiktok", "BytedancePte.Ltd.TikTok"]]
}

test_the_shipped_index_is_used if {
	# An index that lists nothing for TikTok: the decision follows the index.
	empty := object.union(object.remove(index, ["bans"]), {"bans": {}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [tiktok])
		with data.pyagent_index as empty
	d.allow == true
	d.violations == []
}

test_a_ban_missing_from_the_index_is_matched_without_it if {
	# The index does not cover TikTok (a ban added to the data after the index was built).
	partial := object.union(object.remove(index, ["bans", "indexed_bans"]), {"bans": {}, "indexed_bans": {"capcut": true}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [tiktok])
		with data.pyagent_index as partial
	d.allow == false
	[v.rule | some v in d.violations] == ["india/tiktok"]
}

test_an_index_of_another_format_is_not_used if {
	other := object.union(object.remove(index, ["bans"]), {"format": 1, "bans": {}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [tiktok])
		with data.pyagent_index as other
	[v.rule | some v in d.violations] == ["india/tiktok"]
}

test_an_indexed_ban_is_known if {
	rules := {"india": {"title": "India", "rules": {"x": {"ban": "gone", "scopes": ["all"]}}}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [])
		with data.pyagent.organizations as rules
		with data.pyagent_index as object.union(index, {"indexed_bans": {"gone": true}})
	d.errors == []
	not_indexed := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("india", "android", "personal", [])
		with data.pyagent.organizations as rules
	[e.path | some e in not_indexed.errors] == ["pyagent.organizations.india.rules.x.ban"]
}

test_an_invalid_time_classifies_no_breach if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as object.union(report("eu-commission", "android", "corporate", [tiktok]), {"at": "16/03/2023"})
	[e.code | some e in d.errors] == ["invalid_time"]
	[d.violations, d.warnings, d.exempted] == [[], [], []]
	d.allow == false
}

test_a_scope_not_resting_on_work_apps_says_nothing_of_them if {
	# Outlook known by its display name only: the weaker-evidence note is for work-apps scopes alone
	outlook := {"id": "com.microsoft.office.outlook", "evidence": "display_name"}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as report("eu-commission", "android", "personal", [tiktok, outlook])
	[v.message | some v in d.violations] == [concat("", [
		"TikTok (com.zhiliaoapp.musically) is banned on personal-enrolled devices of European Commission ",
		"from 2023-03-15T00:00:00Z: cybersecurity: protection against threats that could be exploited ",
		"against the organisation's corporate environment",
	])]
}
