# METADATA
# title: Ban scopes
# description: |
#   Which of the four scopes a device falls in: `corporate` (the organisation owns it),
#   `personal-enrolled` (personal, enrolled in the organisation's MDM),
#   `personal-with-work-apps` (personal, with one of the organisation's work apps for its
#   platform, or an Android work profile) and `all`.
package pyagent.lib.scopes

import data.pyagent.lib.inheritance
import data.pyagent.lib.matching

# METADATA
# title: Scopes a rule may name
known := {"corporate", "personal-enrolled", "personal-with-work-apps", "all"}

# METADATA
# title: The device of the report
device := input.report.device

# METADATA
# title: Work apps of the organisation for the device's platform
# description: The shared work apps plus those of the organisation and the ones it inherits from.
work_apps contains id if {
	some id in data.pyagent.work_apps[matching.platform]
}

work_apps contains id if {
	some name in inheritance.chain
	org_apps := object.get(inheritance.organizations[name], "work_apps", {})
	some id in object.get(org_apps, matching.platform, [])
}

# METADATA
# title: Lookup index of the work apps, built now
work_app_index := matching.index(work_apps)

# METADATA
# title: The device has work apps
# description: One of its organisation's work apps, or an Android work profile (a work profile is Android's).
has_work_apps if android_work_profile

has_work_apps if {
	work_apps_indexed
	app := input.report.apps[_]
	some k in matching.index_keys(app.id)
	indexed_work_app(k)
}

has_work_apps if {
	not work_apps_indexed
	app := input.report.apps[_]
	matching.matches(work_app_index, app.id)
}

# METADATA
# title: The device has work apps only by display name
# description: |
#   Every work app that puts it in `personal-with-work-apps` was matched from a display name (an
#   MDM export such as Graph's detectedApps), not a package ID, and it has no Android work profile:
#   weaker evidence, which a breach's message says.
work_apps_by_name_only if {
	has_work_apps
	not android_work_profile
	not work_app_by_id
}

# METADATA
# title: The device is an Android device with a work profile
android_work_profile if {
	device.work_profile == true
	device.platform == "android"
}

# METADATA
# title: A work app of the device was matched by its package ID
work_app_by_id if {
	work_apps_indexed
	app := input.report.apps[_]
	object.get(app, "evidence", "id") != "display_name"
	some k in matching.index_keys(app.id)
	indexed_work_app(k)
}

work_app_by_id if {
	not work_apps_indexed
	app := input.report.apps[_]
	object.get(app, "evidence", "id") != "display_name"
	matching.matches(work_app_index, app.id)
}

# METADATA
# title: The shipped ban index covers the work apps of the device's organisation
work_apps_indexed if {
	matching.shipped
	data.pyagent_index.work_apps_indexed == true
	every name in inheritance.chain {
		data.pyagent_index.indexed_orgs[name] == true
	}
}

# METADATA
# title: Is a lookup key a work app in the shipped index
indexed_work_app(k) if data.pyagent_index.work_apps[matching.platform][k]

indexed_work_app(k) if {
	some name in inheritance.chain
	data.pyagent_index.org_work_apps[name][matching.platform][k]
}

# METADATA
# title: Scopes the device falls in
applicable contains "all"

applicable contains "corporate" if device.ownership == "corporate"

applicable contains "personal-enrolled" if {
	device.ownership == "personal"
	device.mdm.enrolled == true
}

applicable contains "personal-with-work-apps" if {
	device.ownership == "personal"
	has_work_apps
}

# METADATA
# title: Scope a rule applies by
# description: The first of the rule's scopes, in the order written, that the device falls in.
scope_of(rule) := matched[0] if {
	matched := [s | some s in rule.scopes; s in applicable]
	count(matched) > 0
}
