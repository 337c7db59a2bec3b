# METADATA
# title: Scope tests
# description: Which scopes a device falls in, by ownership, enrolment and work apps.
package pyagent.lib.scopes_test

import data.pyagent.lib.scopes
import data.pyagent.lib.testdata_test as testdata

device(platform, ownership, enrolled, work_profile, apps) := {"report": {
	"device": {
		"id": "d-1", "platform": platform, "ownership": ownership, "organization": "eu-council",
		"mdm": {"enrolled": enrolled}, "work_profile": work_profile,
	},
	"apps": apps,
}}

test_corporate_device if {
	scopes.applicable == {"all", "corporate"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "corporate", true, false, [])
}

test_personal_enrolled_device if {
	scopes.applicable == {"all", "personal-enrolled"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", true, false, [])
}

test_personal_with_android_work_app if {
	apps := [{"id": "com.cisco.webex.meetings"}]
	scopes.applicable == {"all", "personal-with-work-apps"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
}

test_personal_with_ios_outlook if {
	apps := [{"id": "com.microsoft.Office.Outlook"}]
	scopes.applicable == {"all", "personal-with-work-apps"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("ios", "personal", false, false, apps)
}

test_android_outlook_id_on_ios_is_not_a_work_app if {
	apps := [{"id": "com.microsoft.teams"}]
	scopes.applicable == {"all"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("ios", "personal", false, false, apps)
}

test_work_profile_without_work_apps if {
	scopes.applicable == {"all", "personal-with-work-apps"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, true, [])
}

test_work_profile_counts_on_android_only if {
	every platform in ["ios", "windows", "macos", "linux"] {
		scopes.applicable == {"all"}
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as device(platform, "personal", false, true, [])
	}
}

test_work_apps_by_name_only if {
	outlook := {"id": "com.microsoft.office.outlook", "evidence": "display_name"}
	scopes.work_apps_by_name_only
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, [outlook])
	not scopes.work_apps_by_name_only
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, true, [outlook])
	not scopes.work_apps_by_name_only
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, [{"id": outlook.id}])
	not scopes.work_apps_by_name_only
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, [])
}

test_personal_unmanaged_device_is_only_all if {
	scopes.applicable == {"all"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, [{"id": "org.mozilla.firefox"}])
}

test_corporate_device_with_work_apps_is_not_personal if {
	apps := [{"id": "com.microsoft.office.outlook"}]
	scopes.applicable == {"all", "corporate"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "corporate", false, true, apps)
}

test_organization_work_apps_extend_the_shared_list if {
	orgs := {"eu-council": {"inherits": [], "rules": {}, "work_apps": {"android": ["eu.council.intranet"]}}}
	apps := [{"id": "eu.council.intranet"}]
	scopes.applicable == {"all", "personal-with-work-apps"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
		with data.pyagent.organizations as orgs
}

test_scope_of_is_the_first_matching_scope_in_rule_order if {
	scopes.scope_of({"scopes": ["all", "corporate"]}) == "all"
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "corporate", true, false, [])
}

test_scope_of_is_undefined_out_of_scope if {
	not scopes.scope_of({"scopes": ["corporate"]})
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", true, false, [])
}

index := data.pyagent.lib.matching_test.rego_index

test_work_apps_from_the_shipped_index if {
	apps := [{"id": "com.microsoft.Office.Outlook"}]
	scopes.has_work_apps
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("ios", "personal", false, false, apps)
		with data.pyagent_index as index
	not scopes.has_work_apps
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
		with data.pyagent_index as index
}

test_the_shipped_work_app_index_is_used if {
	# An index that lists no work app: the device has none.
	empty := object.union(object.remove(index, ["work_apps"]), {"work_apps": {}})
	apps := [{"id": "com.cisco.webex.meetings"}]
	scopes.applicable == {"all"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
		with data.pyagent_index as empty
}

test_organization_work_apps_from_the_shipped_index if {
	orgs := {"eu-council": {"title": "Council", "work_apps": {"android": ["org.council.mail"]}}}
	with_org := object.union(object.remove(index, ["org_work_apps"]), {"org_work_apps": {"eu-council": {"android": {"org.council.mail": true}}}})
	apps := [{"id": "org.council.mail"}]
	scopes.has_work_apps
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
		with data.pyagent.organizations as orgs
		with data.pyagent_index as with_org
}

test_an_organization_missing_from_the_index_is_matched_without_it if {
	# The organisation was added to the data after the index was built: its work apps still count.
	orgs := {"eu-council": {"title": "Council", "work_apps": {"android": ["org.council.mail"]}}}
	apps := [{"id": "org.council.mail"}]
	not scopes.work_apps_indexed
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
		with data.pyagent.organizations as orgs
		with data.pyagent_index as object.remove(index, ["indexed_orgs"])
	scopes.has_work_apps
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, apps)
		with data.pyagent.organizations as orgs
		with data.pyagent_index as object.remove(index, ["indexed_orgs"])
}

test_another_organisations_work_apps_do_not_count if {
	# the Council's device has the EEAS's work app only: not a work-apps device of the Council
	orgs := {
		"eu-council": {"inherits": [], "rules": {}},
		"eeas": {"inherits": [], "rules": {}, "work_apps": {"android": ["eu.eeas.intranet"]}},
	}
	scopes.applicable == {"all"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, [{"id": "eu.eeas.intranet"}])
		with data.pyagent.organizations as orgs
}

test_android_work_profile_is_an_android_device_with_one if {
	scopes.android_work_profile
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, true, [])
}

test_android_work_profile_is_neither_another_platform_nor_a_profile_left_out if {
	not scopes.android_work_profile
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("ios", "personal", false, true, [])
	not scopes.android_work_profile
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("android", "personal", false, false, [])
	not scopes.android_work_profile
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"report": {"device": {"platform": "android"}}}
}
