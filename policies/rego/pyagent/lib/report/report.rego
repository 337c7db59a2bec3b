# METADATA
# title: Report checks
# description: |
#   The fields of the device report that the decision reads, checked for type and value. A report in
#   which one of them is wrong is an error, never a device without breaches: otherwise an app ID that
#   is not a string, a platform spelt `Android` or an enrolment flag sent as `"true"` would hide a
#   banned app. pyagent validates reports against the schema before it decides; these checks guard
#   an OPA that any client may query. They cost a few built-in calls, not a pass over the apps.
package pyagent.lib.report

# METADATA
# title: Platforms
platforms := {"android", "ios", "windows", "macos", "linux"}

# METADATA
# title: Ownerships
ownerships := {"corporate", "personal"}

# METADATA
# title: The report's app IDs, in report order
# description: Every app's `id`; an app that is not an object or has no `id` gives none.
app_ids := [id | id := input.report.apps[_].id]

# METADATA
# title: Every app has a string ID
# description: |
#   `min` and `max` compare across types (null < booleans < numbers < strings < arrays < objects), so
#   both are strings only when every ID is; the count catches an app without one.
ids_are_strings if {
	count(app_ids) == count(input.report.apps)
	with_sentinel := array.concat(app_ids, [""]) # a string, so that no apps pass too
	is_string(min(with_sentinel))
	is_string(max(with_sentinel))
}

# METADATA
# title: The decisive fields are well formed
# description: |
#   The checks of the rules below, spelt inline in one body: a well-formed report then costs one rule
#   evaluation rather than six (OPA spends a few microseconds on each), the sets of `platforms` and
#   `ownerships` included. Tests assert that this body and the rules agree on every mutated report,
#   and that the sets are those rules'.
well_formed if {
	is_array(input.report.apps)
	ids_are_strings
	input.report.device.platform in {"android", "ios", "windows", "macos", "linux"} # platforms
	input.report.device.ownership in {"corporate", "personal"} # ownerships
	is_boolean(input.report.device.mdm.enrolled)
	is_boolean(object.get(input.report.device, "work_profile", false))
}

# Each check is a rule of its own, so that a field left out fails it: `not is_array(x)` with `x`
# undefined is itself undefined (OPA evaluates a call's arguments before the negation), while
# `not apps_are_an_array` is true.

# METADATA
# title: The apps are an array
apps_are_an_array if is_array(input.report.apps)

# METADATA
# title: The platform is one of the five
platform_is_known if input.report.device.platform in platforms

# METADATA
# title: The ownership is corporate or personal
ownership_is_known if input.report.device.ownership in ownerships

# METADATA
# title: The enrolment flag is a boolean
enrolment_is_a_boolean if is_boolean(input.report.device.mdm.enrolled)

# METADATA
# title: The work-profile flag is a boolean or absent
work_profile_is_a_boolean if is_boolean(object.get(input.report.device, "work_profile", false))

# METADATA
# title: Report errors
# description: None for a well-formed report; else one per field in error.
errors := set() if {
	well_formed
} else := field_errors

# METADATA
# title: Report errors, one per field
field_errors contains invalid("report.apps", "must be an array of apps") if {
	input.report
	not apps_are_an_array
}

field_errors contains invalid("report.apps[].id", "must be a string in every app") if {
	is_array(input.report.apps)
	not ids_are_strings
}

field_errors contains invalid("report.device.platform", "must be one of android, ios, windows, macos, linux") if {
	input.report
	not platform_is_known
}

field_errors contains invalid("report.device.ownership", "must be corporate or personal") if {
	input.report
	not ownership_is_known
}

field_errors contains invalid("report.device.mdm.enrolled", "must be true or false") if {
	input.report
	not enrolment_is_a_boolean
}

field_errors contains invalid("report.device.work_profile", "must be true or false when given") if {
	is_object(input.report.device)
	not work_profile_is_a_boolean
}

# METADATA
# title: The error of a report field the policy cannot decide on
invalid(path, what) := {
	"code": "invalid_input",
	"path": path,
	"message": concat("", ["input.", path, " ", what]),
}
