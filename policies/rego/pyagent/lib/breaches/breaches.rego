# METADATA
# title: Breaches
# description: |
#   Every (rule, app) pair where a device in a rule's scope has an app the rule's ban lists
#   for the device's platform, classified as a violation, a warning or an exempted breach.
#   Loops over the device's apps iterate by reference (`input.report.apps[i]`, `app_ids[i] == id`),
#   not with `some ... in`, which OPA evaluates through a membership built-in per element: twice
#   the time on a 200-app phone (scopes.rego does the same).
package pyagent.lib.breaches

import data.pyagent.lib.clock
import data.pyagent.lib.exemptions
import data.pyagent.lib.inheritance
import data.pyagent.lib.matching
import data.pyagent.lib.messages
import data.pyagent.lib.report
import data.pyagent.lib.scopes

# METADATA
# title: Enforcement modes
enforcements := {"deny", "warn", "dryrun"}

# METADATA
# title: Bans named by the rules in force
bans_in_force contains r.rule.ban if some r in inheritance.rules

# METADATA
# title: Banned apps found on the device, as [ban, app index]
# description: |
#   Looked up in the shipped ban index when it covers the ban (see `matching.shipped`), else in
#   an index of the ban's identifiers for the device's platform built now. Same result either way.
found contains [ban, i] if {
	read_whole_table
	some id in listed_app_ids
	app_ids[i] == id
	some ban, _ in data.pyagent_index.bans[matching.platform][id]
	indexed_in_force(ban)
}

found contains [ban, i] if {
	matching.exact_platform
	not read_whole_table
	p := matching.platform
	app := input.report.apps[i]
	listed := data.pyagent_index.bans[p][app.id]
	some ban, _ in listed
	indexed_in_force(ban)
}

# METADATA
# title: Read the platform's whole key table, rather than look each app up
# description: |
#   Where IDs match exactly and the platform's table lists fewer keys than half the device's
#   apps: OPA reads a table from its store in time proportional to its size, and looks a key up
#   in constant time, so a small table is read once and a large one looked into once per app.
read_whole_table if {
	matching.exact_platform
	object.get(data.pyagent_index.sizes, matching.platform, 0) * 2 <= count(input.report.apps)
}

# METADATA
# title: The device's app IDs, in report order, where IDs match exactly
app_ids := report.app_ids if matching.exact_platform

# METADATA
# title: The device's app IDs that the shipped index lists, on a platform where IDs match exactly
# description: |
#   One built-in call: `data.pyagent_index.keys[platform]` maps every listed key to no edges, so
#   the IDs reachable from the device's IDs are exactly those that are listed.
listed_app_ids := graph.reachable(data.pyagent_index.keys[matching.platform], app_ids)

found contains [ban, i] if {
	not matching.exact_platform
	p := matching.platform
	app := input.report.apps[i]
	some k in matching.index_keys(app.id)
	listed := data.pyagent_index.bans[p][k]
	some ban, _ in listed
	indexed_in_force(ban)
}

found contains [ban, i] if {
	some ban in bans_in_force
	not matching.ban_indexed(ban)
	idx := built_index(ban)
	app := input.report.apps[i]
	matching.matches(idx, app.id)
}

# METADATA
# title: A ban in force that the shipped index covers
indexed_in_force(ban) if {
	bans_in_force[ban]
	matching.ban_indexed(ban)
}

# METADATA
# title: Lookup index of a ban's identifiers on the device's platform, built now
built_index(ban) := matching.index(object.get(object.get(data.pyagent.bans[ban], "apps", {}), matching.platform, []))

# METADATA
# title: Classified breaches
# description: |
#   Each breach as [kind, entry]: its kind (violation, warning or exempted) and the entry the
#   decision lists under that kind. The scope is worked out only for a rule the device breaks.
classified contains [kind, entry] if {
	clock.valid # without a valid time no rule is in force or ahead: the decision is its time error
	some key, r in inheritance.rules
	rule := r.rule
	some pair in found
	pair[0] == rule.ban
	scope := scopes.scope_of(rule)
	app := input.report.apps[pair[1]]
	mode := enforcement(rule)
	[kind, reason] := classify(rule, mode)
	entry := object.union(base_entry(key, rule, mode, scope, app), kind_fields(kind, reason, rule.ban))
}

# METADATA
# title: A rule's enforcement
# description: deny when the rule does not say.
enforcement(rule) := object.get(rule, "enforcement", "deny")

# METADATA
# title: A rule in force at the evaluation time
# description: It has no effective_from, or the evaluation time has reached it.
in_force(rule) if {
	not rule.effective_from
} else if {
	clock.reached(rule.effective_from)
}

# METADATA
# title: A breach's kind, and the reason of a warning
# description: "`mode`: the rule's enforcement (`enforcement(rule)`)."
classify(rule, mode) := ["warning", "not_yet_effective"] if {
	not in_force(rule)
} else := ["warning", reason] if {
	reason := {"warn": "enforcement_warn", "dryrun": "enforcement_dryrun"}[mode]
} else := ["exempted", ""] if {
	exemptions.in_force[rule.ban]
} else := ["violation", ""]

# METADATA
# title: The fields of a breach that its kind decides
kind_fields("warning", reason, _) := {"reason": reason}

kind_fields("violation", _, ban) := {"expired_exemptions": expired} if {
	expired := exemptions.expired[ban]
	count(expired) > 0
} else := {}

kind_fields("exempted", _, ban) := {"exemption": {
	"id": ex.id,
	"reason": ex.reason,
	"until": ex.until,
	"approved_by": object.get(ex, "approved_by", null),
}} if {
	ex := exemptions.in_force[ban]
}

# METADATA
# title: The fields every kind of breach has
base_entry(key, rule, mode, scope, app) := object.union(
	{
		"rule": key,
		"ban": rule.ban,
		"app_id": app.id,
		"message": messages.message(key, rule, scope, app),
		"remediation": messages.remediation(rule, app),
		"effective_from": object.get(rule, "effective_from", null),
		"scope": scope,
		"enforcement": mode,
	},
	optional_app_fields(app),
)

# METADATA
# title: The app's name and evidence, where the report gives them as the schema says
optional_app_fields(app) := {field: value |
	some key, field in {"name": "app_name", "evidence": "evidence"}
	value := app[key]
	shown_as_given(key, value) # (an OPA asked directly gets reports no schema checked)
}

# METADATA
# title: An app field shown as the report gives it
shown_as_given("name", value) if is_string(value)

shown_as_given("evidence", value) if value in {"id", "display_name"}
