# METADATA
# title: Matching tests
# description: IDs per platform; case rules; Windows publisher-hash suffixes; never display names.
package pyagent.lib.matching_test

import data.pyagent.lib.matching
import data.pyagent.lib.testdata_test as testdata

on(platform) := {"report": {"device": {"platform": platform}}}

tiktok_pfn := "BytedancePte.Ltd.TikTok_6yccndn6064se"

test_android_exact_match if {
	matching.matches(matching.index(["com.zhiliaoapp.musically"]), "com.zhiliaoapp.musically")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("android")
}

test_android_is_case_sensitive if {
	not matching.matches(matching.index(["com.zhiliaoapp.musically"]), "com.Zhiliaoapp.Musically")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("android")
}

test_android_prefix_does_not_match if {
	not matching.matches(matching.index(["com.zhiliaoapp.musically"]), "com.zhiliaoapp.musically.go")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("android")
}

test_ios_ignores_case if {
	matching.matches(matching.index(["com.ss.iphone.ugc.Aweme"]), "com.ss.iphone.ugc.aweme")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("ios")
}

test_windows_family_name_ignores_case if {
	matching.matches(matching.index([tiktok_pfn]), "bytedancepte.ltd.tiktok_6YCCNDN6064SE")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_windows_without_publisher_hash_matches if {
	matching.matches(matching.index([tiktok_pfn]), "BytedancePte.Ltd.TikTok")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_windows_listed_without_hash_matches_any_hash if {
	matching.matches(matching.index(["BytedancePte.Ltd.TikTok"]), tiktok_pfn)
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_windows_full_package_name_matches if {
	full := "BytedancePte.Ltd.TikTok_1.0.39.0_x64__6yccndn6064se"
	matching.matches(matching.index([tiktok_pfn]), full)
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_windows_other_publisher_hash_does_not_match if {
	not matching.matches(matching.index([tiktok_pfn]), "BytedancePte.Ltd.TikTok_0000000000000")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_windows_other_name_does_not_match if {
	not matching.matches(matching.index([tiktok_pfn]), "BytedancePte.Ltd.TikTokLive_6yccndn6064se")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_display_name_never_matches if {
	not matching.matches(matching.index(["com.zhiliaoapp.musically"]), "TikTok")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("android")
}

test_key_of_plain_linux_id if {
	matching.key("Firefox") == ["Firefox", ""]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("linux")
}

test_index_is_an_object_of_lookup_keys if {
	matching.index_for("windows", [tiktok_pfn]) == {
		concat("\u0000", ["bytedancepte.ltd.tiktok", "6yccndn6064se"]): true,
		concat("\u0000", ["bytedancepte.ltd.tiktok", "*"]): true,
	}
}

test_lookup_keys_of_an_id_without_hash if {
	matching.lookup_keys("BytedancePte.Ltd.TikTok") == [concat("\u0000", ["bytedancepte.ltd.tiktok", "*"])]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_lookup_keys_of_an_id_with_hash if {
	matching.lookup_keys(tiktok_pfn) == [
		concat("\u0000", ["bytedancepte.ltd.tiktok", "6yccndn6064se"]),
		concat("\u0000", ["bytedancepte.ltd.tiktok", ""]),
	]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_index_keys_by_platform if {
	matching.index_keys("Com.X") == ["Com.X"]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("android")
	matching.index_keys("Com.X") == ["Com.X"]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("linux")
	matching.index_keys("Com.X") == ["com.x"]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("ios")
	matching.index_keys("Com.X") == ["com.x"]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("macos")
	matching.index_keys("Com.X") == [concat("\u0000", ["com.x", "*"])]
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on("windows")
}

test_ban_indexed_only_with_a_known_format if {
	matching.ban_indexed("tiktok") with data.pyagent_index as {"format": 4, "indexed_bans": {"tiktok": true}}
	not matching.ban_indexed("capcut") with data.pyagent_index as {"format": 4, "indexed_bans": {"tiktok": true}}
	not matching.ban_indexed("tiktok") with data.pyagent_index as {"format": 1, "indexed_bans": {"tiktok": true}}
	not matching.ban_indexed("tiktok")
}

# The index that `pyagent/policy/index.py` builds, built here with the policy's own key functions,
# times aside: the Python tests compare the two, and the decision tests decide with it.
keys_for(p, id) := [id] if {
	not p in matching.case_insensitive
} else := [matching.lookup_key(name, hash), matching.lookup_key(name, "*")] if {
	p == "windows"
	[name, hash] := matching.key_for(p, id)
} else := [lower(id)]

ban_entries contains [p, k, ban] if {
	some ban, definition in testdata.bans
	some p, ids in definition.apps
	some id in ids
	some k in keys_for(p, id)
}

ban_keys_on(p) := {k: {e[2]: true | some e in ban_entries; e[0] == p; e[1] == k} |
	some entry in ban_entries
	entry[0] == p
	k := entry[1]
}

platform_keys(apps) := {p: {k: true | some id in ids; some k in keys_for(p, id)} | some p, ids in apps}

rego_index := {
	"format": 4,
	"bans": {p: ban_keys_on(p) | some [p, _, _] in ban_entries},
	"keys": {p: {k: [] | some k, _ in ban_keys_on(p)} | some [p, _, _] in ban_entries},
	"sizes": {p: count(ban_keys_on(p)) | some [p, _, _] in ban_entries},
	"indexed_bans": {ban: true | some ban, _ in testdata.bans},
	"work_apps": platform_keys(testdata.work_apps),
	"work_apps_indexed": true,
	"org_work_apps": {name: platform_keys(object.get(org, "work_apps", {})) | some name, org in testdata.organizations},
	"indexed_orgs": {name: true | some name, _ in testdata.organizations},
	"times": {},
}

test_rego_index_lists_tiktok_under_its_keys if {
	rego_index.bans.android["com.zhiliaoapp.musically"] == {"tiktok": true}
	rego_index.bans.ios["com.ss.iphone.ugc.aweme"] == {"tiktok": true}
	rego_index.bans.windows[concat("\u0000", ["bytedancepte.ltd.tiktok", "*"])] == {"tiktok": true}
	not rego_index.bans.android["com.ss.iphone.ugc.Aweme"]
}

exact_on(platform) if {
	matching.exact_platform
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as on(platform)
} else := false

# `exact_platform` is every platform but those of `case_insensitive`, near misses included.
test_exact_platforms_are_those_not_case_insensitive if {
	platforms := {"android", "ios", "windows", "macos", "linux", "Android", "IOS", ""}
	verdicts := {p: exact_on(p) | some p in platforms}
	verdicts == {p: v | some p in platforms; v := not_case_insensitive(p)}
	verdicts == {
		"android": true, "ios": false, "windows": false, "macos": false, "linux": true,
		"Android": true, "IOS": true, "": true,
	}
}

not_case_insensitive(p) if {
	not p in matching.case_insensitive
} else := false

test_publisher_hash_is_the_last_part_after_an_underscore if {
	matching.publisher_hash(["bytedancepte.ltd.tiktok", "6yccndn6064se"]) == "6yccndn6064se"
	matching.publisher_hash(["a", "b", "c"]) == "c"
}

test_publisher_hash_is_empty_without_an_underscore if {
	matching.publisher_hash(["bytedance.capcut"]) == ""
}

test_lookup_keys_of_different_pairs_differ if {
	matching.lookup_key("a", "b") == "a\u0000b"
	matching.lookup_key("a_b", "") != matching.lookup_key("a", "b")
	matching.separator == "\u0000"
}
