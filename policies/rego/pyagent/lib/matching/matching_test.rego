# METADATA
# title: Matching tests
# description: IDs per platform; case rules; Windows publisher-hash suffixes; never display names.
package pyagent.lib.matching_test

import data.pyagent.lib.matching

on(platform) := {"report": {"device": {"platform": platform}}}

tiktok_pfn := "BytedancePte.Ltd.TikTok_6yccndn6064se"

test_android_exact_match if {
	matching.matches(matching.index(["com.zhiliaoapp.musically"]), "com.zhiliaoapp.musically") with input as on("android")
}

test_android_is_case_sensitive if {
	not matching.matches(matching.index(["com.zhiliaoapp.musically"]), "com.Zhiliaoapp.Musically") with input as on("android")
}

test_android_prefix_does_not_match if {
	not matching.matches(matching.index(["com.zhiliaoapp.musically"]), "com.zhiliaoapp.musically.go") with input as on("android")
}

test_ios_ignores_case if {
	matching.matches(matching.index(["com.ss.iphone.ugc.Aweme"]), "com.ss.iphone.ugc.aweme") with input as on("ios")
}

test_windows_family_name_ignores_case if {
	matching.matches(matching.index([tiktok_pfn]), "bytedancepte.ltd.tiktok_6YCCNDN6064SE") with input as on("windows")
}

test_windows_without_publisher_hash_matches if {
	matching.matches(matching.index([tiktok_pfn]), "BytedancePte.Ltd.TikTok") with input as on("windows")
}

test_windows_listed_without_hash_matches_any_hash if {
	matching.matches(matching.index(["BytedancePte.Ltd.TikTok"]), tiktok_pfn) with input as on("windows")
}

test_windows_full_package_name_matches if {
	full := "BytedancePte.Ltd.TikTok_1.0.39.0_x64__6yccndn6064se"
	matching.matches(matching.index([tiktok_pfn]), full) with input as on("windows")
}

test_windows_other_publisher_hash_does_not_match if {
	not matching.matches(matching.index([tiktok_pfn]), "BytedancePte.Ltd.TikTok_0000000000000") with input as on("windows")
}

test_windows_other_name_does_not_match if {
	not matching.matches(matching.index([tiktok_pfn]), "BytedancePte.Ltd.TikTokLive_6yccndn6064se") with input as on("windows")
}

test_display_name_never_matches if {
	not matching.matches(matching.index(["com.zhiliaoapp.musically"]), "TikTok") with input as on("android")
}

test_key_of_plain_linux_id if {
	matching.key("Firefox") == ["Firefox", ""] with input as on("linux")
}

test_index_is_an_object_of_lookup_keys if {
	matching.index_for("windows", [tiktok_pfn]) == {
		concat("\u0000", ["bytedancepte.ltd.tiktok", "6yccndn6064se"]): true,
		concat("\u0000", ["bytedancepte.ltd.tiktok", "*"]): true,
	}
}

test_ban_keys_cover_every_ban_and_platform if {
	keys := matching.ban_keys
	object.keys(keys) == object.keys(data.pyagent.bans)
	object.keys(keys.tiktok) == {"android", "ios", "windows"}
	keys.tiktok.ios == matching.index_for("ios", data.pyagent.bans.tiktok.apps.ios)
}
