# METADATA
# title: Breach tests
# description: Enforcement modes, platforms, policy data errors, and bans added by data.
package pyagent.lib.breaches_test

import data.pyagent.decision

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

commission_rule(patch) := object.union(data.pyagent.organizations, {"eu-commission": {
	"title": "European Commission",
	"inherits": [],
	"rules": {"tiktok": object.union(data.pyagent.organizations["eu-commission"].rules.tiktok, patch)},
}})

tiktok := {"id": "com.zhiliaoapp.musically"}

test_enforcement_deny_is_a_violation if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
	[[v.rule, v.enforcement] | some v in d.violations] == [["eu-commission/tiktok", "deny"]]
	d.allow == false
}

test_enforcement_warn_is_a_warning_and_allows if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"enforcement": "warn"})
	d.allow == true
	d.violations == []
	[[w.rule, w.reason, w.enforcement] | some w in d.warnings] == [["eu-commission/tiktok", "enforcement_warn", "warn"]]
}

test_enforcement_dryrun_is_a_warning_and_allows if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"enforcement": "dryrun"})
	d.allow == true
	[[w.rule, w.reason] | some w in d.warnings] == [["eu-commission/tiktok", "enforcement_dryrun"]]
}

test_missing_enforcement_defaults_to_deny if {
	orgs := {"x": {"inherits": [], "rules": {"r": {"ban": "tiktok", "scopes": ["all"]}}}}
	d := decision with input as report("x", "android", "personal", [tiktok]) with data.pyagent.organizations as orgs
	[[v.rule, v.enforcement, v.effective_from] | some v in d.violations] == [["x/r", "deny", null]]
	d.violations[0].message == "TikTok (com.zhiliaoapp.musically) is banned on all devices of x: cybersecurity: protection against threats that could be exploited against the organisation's corporate environment"
	d.violations[0].remediation == "Uninstall TikTok (com.zhiliaoapp.musically) from this device."
}

test_unknown_enforcement_is_a_data_error if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"enforcement": "block"})
	d.allow == false
	[[e.code, e.path] | some e in d.errors] == [["invalid_policy_data", "pyagent.organizations.eu-commission.rules.tiktok.enforcement"]]
}

test_unknown_scope_is_a_data_error if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"scopes": ["corporate", "contractors"]})
	[[e.code, e.path] | some e in d.errors] == [["invalid_policy_data", "pyagent.organizations.eu-commission.rules.tiktok.scopes"]]
	d.allow == false
}

test_empty_scopes_is_a_data_error if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"scopes": []})
	[e.path | some e in d.errors] == ["pyagent.organizations.eu-commission.rules.tiktok.scopes"]
	d.allow == false
}

test_unknown_ban_is_a_data_error if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"ban": "tiktok2"})
	[e.path | some e in d.errors] == ["pyagent.organizations.eu-commission.rules.tiktok.ban"]
	d.allow == false
}

test_bad_effective_from_is_a_data_error if {
	d := decision with input as report("eu-commission", "android", "corporate", [tiktok])
		with data.pyagent.organizations as commission_rule({"effective_from": "15 March 2023"})
	[e.path | some e in d.errors] == ["pyagent.organizations.eu-commission.rules.tiktok.effective_from"]
	d.allow == false
}

test_every_shipped_tiktok_android_id_is_banned if {
	ids := data.pyagent.bans.tiktok.apps.android
	d := decision with input as report("india", "android", "personal", [{"id": id} | some id in ids])
	count(d.violations) == 4
	{v.app_id | some v in d.violations} == {
		"com.zhiliaoapp.musically", "com.ss.android.ugc.trill",
		"com.zhiliaoapp.musically.go", "com.ss.android.ugc.aweme",
	}
}

test_ios_tiktok_and_douyin_are_banned if {
	apps := [{"id": "com.zhiliaoapp.musically"}, {"id": "com.ss.iphone.ugc.Aweme"}, {"id": "com.apple.mobilesafari"}]
	d := decision with input as report("india", "ios", "personal", apps)
	[v.app_id | some v in d.violations] == ["com.ss.iphone.ugc.Aweme", "com.zhiliaoapp.musically"]
}

test_windows_store_id_is_banned if {
	d := decision with input as report("us-federal", "windows", "corporate", [{"id": "9NH2GPH4JZS4"}])
	[v.app_id | some v in d.violations] == ["9NH2GPH4JZS4"]
}

test_android_id_on_windows_is_not_banned if {
	d := decision with input as report("us-federal", "windows", "corporate", [tiktok])
	d.allow == true
}

test_capcut_is_not_banned_by_any_shipped_organization if {
	d := decision with input as report("india", "android", "corporate", [{"id": "com.lemon.lvoverseas"}, {"id": "com.bd.nproject"}])
	d.allow == true
	d.violations == []
}

test_display_name_evidence_is_carried_to_the_violation if {
	app := {"id": "com.zhiliaoapp.musically", "name": "TikTok", "evidence": "display_name"}
	d := decision with input as report("india", "android", "personal", [app])
	[[v.app_id, v.app_name, v.evidence] | some v in d.violations] == [["com.zhiliaoapp.musically", "TikTok", "display_name"]]
}

test_new_ban_is_a_data_edit if {
	bans := object.union(data.pyagent.bans, {"telegram": {
		"title": "Telegram", "reason": "data protection",
		"apps": {"android": ["org.telegram.messenger"]},
	}})
	orgs := object.union(data.pyagent.organizations, {"eu-parliament": {
		"title": "European Parliament", "inherits": [],
		"rules": {"telegram": {"ban": "telegram", "scopes": ["corporate"], "effective_from": "2023-03-01T00:00:00Z"}},
	}})
	d := decision with input as report("eu-parliament", "android", "corporate", [{"id": "org.telegram.messenger"}])
		with data.pyagent.bans as bans
		with data.pyagent.organizations as orgs
	[[v.rule, v.ban, v.scope] | some v in d.violations] == [["eu-parliament/telegram", "telegram", "corporate"]]
}

test_adding_capcut_to_the_commission_is_a_data_edit if {
	orgs := object.union(data.pyagent.organizations, {"eu-commission": {"rules": {"capcut": {
		"ban": "capcut", "scopes": ["corporate"], "effective_from": "2023-03-20T00:00:00Z",
	}}}})
	capcut := {"id": "com.lemon.lvoverseas"}
	before := decision with input as report("eu-commission", "android", "corporate", [capcut])
		with data.pyagent.organizations as orgs
	later := object.union(report("eu-commission", "android", "corporate", [capcut]), {"at": "2023-03-20T00:00:00Z"})
	after := decision with input as later
		with data.pyagent.organizations as orgs
	[w.reason | some w in before.warnings] == ["not_yet_effective"]
	before.allow == true
	[v.rule | some v in after.violations] == ["eu-commission/capcut"]
}

test_shipped_data_has_no_errors_for_any_organization if {
	every org, _ in data.pyagent.organizations {
		d := decision with input as report(org, "android", "corporate", [])
		d.errors == []
	}
}

test_kept_ban_keys_give_the_same_decisions if {
	apps := [{"id": "com.zhiliaoapp.musically"}, {"id": "com.ss.iphone.ugc.aweme"}, {"id": "org.example"}]
	every platform in ["android", "ios", "windows", "macos"] {
		built := decision with input as report("india", platform, "personal", apps)
		kept := decision with input as report("india", platform, "personal", apps)
			with data.pyagent.ban_keys as data.pyagent.lib.matching.ban_keys
		built == kept
	}
}

test_kept_ban_keys_are_used if {
	# A kept index that lists nothing for TikTok: the decision follows the kept index.
	d := decision with input as report("india", "android", "personal", [tiktok])
		with data.pyagent.ban_keys as {"tiktok": {"android": {}}}
	d.allow == true
}
