# METADATA
# title: Scope tests
# description: Which scopes a device falls in, by ownership, enrolment and work apps.
package pyagent.lib.scopes_test

import data.pyagent.lib.scopes

device(platform, ownership, enrolled, work_profile, apps) := {"report": {
	"device": {
		"id": "d-1", "platform": platform, "ownership": ownership, "organization": "eu-council",
		"mdm": {"enrolled": enrolled}, "work_profile": work_profile,
	},
	"apps": apps,
}}

test_corporate_device if {
	scopes.applicable == {"all", "corporate"} with input as device("android", "corporate", true, false, [])
}

test_personal_enrolled_device if {
	scopes.applicable == {"all", "personal-enrolled"} with input as device("android", "personal", true, false, [])
}

test_personal_with_android_work_app if {
	apps := [{"id": "com.cisco.webex.meetings"}]
	scopes.applicable == {"all", "personal-with-work-apps"} with input as device("android", "personal", false, false, apps)
}

test_personal_with_ios_outlook if {
	apps := [{"id": "com.microsoft.Office.Outlook"}]
	scopes.applicable == {"all", "personal-with-work-apps"} with input as device("ios", "personal", false, false, apps)
}

test_android_outlook_id_on_ios_is_not_a_work_app if {
	apps := [{"id": "com.microsoft.teams"}]
	scopes.applicable == {"all"} with input as device("ios", "personal", false, false, apps)
}

test_work_profile_without_work_apps if {
	scopes.applicable == {"all", "personal-with-work-apps"} with input as device("android", "personal", false, true, [])
}

test_personal_unmanaged_device_is_only_all if {
	scopes.applicable == {"all"} with input as device("android", "personal", false, false, [{"id": "org.mozilla.firefox"}])
}

test_corporate_device_with_work_apps_is_not_personal if {
	apps := [{"id": "com.microsoft.office.outlook"}]
	scopes.applicable == {"all", "corporate"} with input as device("android", "corporate", false, true, apps)
}

test_organization_work_apps_extend_the_shared_list if {
	orgs := {"eu-council": {"inherits": [], "rules": {}, "work_apps": {"android": ["eu.council.intranet"]}}}
	apps := [{"id": "eu.council.intranet"}]
	scopes.applicable == {"all", "personal-with-work-apps"} with input as device("android", "personal", false, false, apps)
		with data.pyagent.organizations as orgs
}

test_scope_of_is_the_first_matching_scope_in_rule_order if {
	scopes.scope_of({"scopes": ["all", "corporate"]}) == "all" with input as device("android", "corporate", true, false, [])
}

test_scope_of_is_undefined_out_of_scope if {
	not scopes.scope_of({"scopes": ["corporate"]}) with input as device("android", "personal", true, false, [])
}
