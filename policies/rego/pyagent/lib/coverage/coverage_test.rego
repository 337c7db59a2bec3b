# METADATA
# title: Inventory coverage tests
# description: |
#   A Windows inventory that cannot list Store apps leaves Store bans unchecked, and an MDM's inventory
#   of a work profile every ban on the phone: said as warnings.
package pyagent.lib.coverage_test

import data.pyagent.decision
import data.pyagent.lib.coverage
import data.pyagent.lib.testdata_test as testdata

windows(org, ownership, apps, not_listed) := {
	"at": "2023-03-16T09:30:00Z",
	"report": {
		"device": {
			"id": "w-1", "platform": "windows", "ownership": ownership,
			"organization": org, "mdm": {"enrolled": false},
		},
		"apps": apps,
		"collector": {"name": "osquery", "version": "0.1.0", "not_listed": not_listed},
	},
}

office := {"id": "{90160000-008C-0000-1000-0000000FF1CE}", "name": "Microsoft Office"}

unchecked_tiktok(scope, org_title, rule, effective_from) := {
	"rule": rule,
	"ban": "tiktok",
	"app_id": "BytedancePte.Ltd.TikTok_6yccndn6064se",
	"message": concat("", [
		"TikTok (BytedancePte.Ltd.TikTok_6yccndn6064se, 9NH2GPH4JZS4) could not be checked on ", scope,
		" devices of ", org_title, ": the inventory does not list Microsoft Store apps",
	]),
	"remediation": "Take the inventory again with a collector that lists Store apps (osquery 5.17 or later: programs.package_family_name).",
	"effective_from": effective_from,
	"scope": scope,
	"enforcement": "deny",
	"reason": "not_listed",
}

test_a_store_ban_is_unchecked_on_an_inventory_without_store_apps if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "corporate", [office], ["windows-store"])
	d.allow == true
	d.violations == []
	d.warnings == [unchecked_tiktok("corporate", "European Commission", "eu-commission/tiktok", "2023-03-15T00:00:00Z")]
}

test_india_bans_on_every_device_so_every_device_is_unchecked if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("india", "personal", [office], ["windows-store"])
	d.warnings == [unchecked_tiktok("all", "Government of India", "india/tiktok", "2020-06-29T00:00:00Z")]
}

test_an_inventory_that_lists_store_apps_leaves_nothing_unchecked if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "corporate", [office], [])
	[d.allow, d.violations, d.warnings, d.exempted, d.errors] == [true, [], [], [], []]
}

test_a_device_out_of_the_rules_scope_is_not_unchecked if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "personal", [office], ["windows-store"])
	[d.allow, d.violations, d.warnings, d.exempted, d.errors] == [true, [], [], [], []]
}

test_a_ban_found_anyway_is_a_violation_not_unchecked if {
	found := {"id": "9NH2GPH4JZS4", "name": "TikTok"}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "corporate", [office, found], ["windows-store"])
	d.allow == false
	[[v.rule, v.app_id] | some v in d.violations] == [["eu-commission/tiktok", "9NH2GPH4JZS4"]]
	d.warnings == []
}

test_an_exempted_ban_is_not_unchecked if {
	exemption := {"EX-1": {
		"device_id": "w-1", "organization": "eu-commission", "ban": "tiktok",
		"until": "2023-06-30T00:00:00Z", "reason": "official account", "approved_by": "DIGIT",
	}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "corporate", [office], ["windows-store"])
		with data.pyagent.exemptions as exemption
	[d.allow, d.violations, d.warnings, d.exempted, d.errors] == [true, [], [], [], []]
}

test_another_platform_or_an_unknown_kind_is_not_unchecked if {
	coverage.unchecked == set()
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "corporate", [office], ["windows-store"])
		with input.report.device.platform as "android"
	coverage.unchecked == set()
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as windows("eu-commission", "corporate", [office], ["other"])
}

test_store_identifiers if {
	coverage.store_id("BytedancePte.Ltd.TikTok_6yccndn6064se")
	coverage.store_id("9NH2GPH4JZS4")
	coverage.store_id("XPDC2RH70K22MN")
}

test_other_identifiers_are_no_store_identifiers if {
	not coverage.store_id("ByteDance.CapCut")
	not coverage.store_id("{90160000-008C-0000-1000-0000000FF1CE}")
	not coverage.store_id("Name_Version_x64__6yccndn6064se")
	not coverage.store_id("com.abc.defgh")
}

work_profile_phone(org, apps, not_listed) := {
	"at": "2023-03-16T09:30:00Z",
	"report": {
		"device": {
			"id": "p-1", "platform": "android", "ownership": "personal", "work_profile": true,
			"organization": org, "mdm": {"enrolled": false},
		},
		"apps": apps,
		"collector": {"name": "intune", "version": "0.1.0", "not_listed": not_listed},
	},
}

outlook := {"id": "com.microsoft.office.outlook", "name": "Microsoft Outlook", "evidence": "display_name"}

test_a_work_profile_inventory_leaves_the_phones_bans_unchecked if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as work_profile_phone("eu-council", [outlook], ["unmanaged-apps"])
	d.allow == true
	d.violations == []
	d.warnings == [{
		"rule": "eu-council/tiktok",
		"ban": "tiktok",
		"app_id": "com.zhiliaoapp.musically",
		"message": concat("", [
			"TikTok (com.zhiliaoapp.musically, com.ss.android.ugc.trill, com.zhiliaoapp.musically.go, ",
			"com.ss.android.ugc.aweme) could not be checked on personal-with-work-apps devices of ",
			"Council of the European Union: the inventory lists only the apps the organisation manages ",
			"(an MDM's, of a personal device or a work profile), not the rest of the device",
		]),
		"remediation": "Take the inventory on the device itself (pyagent collect, or adb shell pm list packages), which lists every app: an MDM cannot see the personal side of a phone.",
		"effective_from": "2023-03-15T00:00:00Z",
		"scope": "personal-with-work-apps",
		"enforcement": "deny",
		"reason": "not_listed",
	}]
}

test_a_work_profile_inventory_that_lists_every_app_leaves_nothing_unchecked if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as work_profile_phone("eu-council", [outlook], [])
	d.allow == true
	d.warnings == []
}

test_a_work_profile_phone_out_of_every_rules_scope_is_not_unchecked if {
	# the Commission bans TikTok on corporate and enrolled phones only: this one is neither
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as work_profile_phone("eu-commission", [outlook], ["unmanaged-apps"])
	d.warnings == []
}

test_unmanaged_apps_exist_on_every_platform_and_store_apps_on_windows_only if {
	coverage.on_platform(coverage.kinds["unmanaged-apps"].platforms, "ios")
	coverage.on_platform(coverage.kinds["windows-store"].platforms, "windows")
	not coverage.on_platform(coverage.kinds["windows-store"].platforms, "android")
}
