# METADATA
# title: Policy data errors in the rules in force
# description: |
#   Mistakes in the data of the bans and organisations that the device's rules rest on: each
#   would make a rule match nothing, so the device would be allowed without a word; reported as
#   `invalid_policy_data` with the path of the mistake, and a decision with errors never allows.
#   Checked per decision only where the shipped index did not resolve the organisation (the
#   index resolves only organisations whose data has no such error): on the raw folders, or with
#   an overlay.
package pyagent.lib.ruledata

import data.pyagent.lib.breaches
import data.pyagent.lib.clock
import data.pyagent.lib.inheritance
import data.pyagent.lib.matching
import data.pyagent.lib.report
import data.pyagent.lib.scopes

# METADATA
# title: Policy data errors in the rules in force
# description: None for an organisation the shipped index resolved (it resolves only those without).
errors := set() if {
	inheritance.resolved
} else := rule_errors

# METADATA
# title: Policy data errors in the rules in force, checked per decision
rule_errors contains err if {
	some key, r in inheritance.rules
	not known_ban(r.rule)
	err := data_error(key, "ban", concat("", ["rule ", key, " names unknown ban ", json.marshal(object.get(r.rule, "ban", null))]))
}

rule_errors contains err if {
	some key, r in inheritance.rules
	not known_enforcement(r.rule)
	err := data_error(key, "enforcement", concat("", ["rule ", key, " has enforcement ", json.marshal(breaches.enforcement(r.rule)), "; expected deny, warn or dryrun"]))
}

rule_errors contains err if {
	some key, r in inheritance.rules
	some s in object.get(r.rule, "scopes", [])
	not known_scope(s)
	err := data_error(key, "scopes", concat("", ["rule ", key, " has unknown scope ", json.marshal(s)]))
}

rule_errors contains err if {
	some key, r in inheritance.rules
	scopes := object.get(r.rule, "scopes", [])
	not is_array(scopes)
	err := data_error(key, "scopes", concat("", ["rule ", key, " has scopes ", json.marshal(scopes), "; expected a list of scopes"]))
}

rule_errors contains err if {
	some key, r in inheritance.rules
	is_array(object.get(r.rule, "scopes", []))
	count(object.get(r.rule, "scopes", [])) == 0
	err := data_error(key, "scopes", concat("", ["rule ", key, " names no scopes"]))
}

rule_errors contains err if {
	some key, r in inheritance.rules
	r.rule.effective_from
	not clock.valid_time(r.rule.effective_from)
	err := data_error(key, "effective_from", concat("", ["rule ", key, " needs effective_from as an RFC 3339 timestamp"]))
}

# METADATA
# title: A rule in force that is not an object
# description: Null, a string or a list names no ban, and the device would be allowed without a word.
rule_errors contains err if {
	some key, r in inheritance.rules
	not is_object(r.rule)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.organizations", r.owner, "rules", r.id]),
		"message": concat("", ["rule ", key, " is ", json.marshal(r.rule), "; expected an object with its ban, scopes and effective_from"]),
	}
}

# METADATA
# title: A ban in force that is not an object, or lists no identifiers
rule_errors contains err if {
	some ban in breaches.bans_in_force
	entry := data.pyagent.bans[ban]
	not is_object(entry) # null, a string or a list
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.bans", ban]),
		"message": concat("", ["ban ", ban, " is ", json.marshal(entry), "; expected an object with its title and apps"]),
	}
}

rule_errors contains err if {
	some ban in breaches.bans_in_force
	entry := data.pyagent.bans[ban]
	is_object(entry)
	object.get(entry, "apps", {}) == {} # (none, or no platform: the ban would match nothing)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.bans", ban, "apps"]),
		"message": concat("", ["ban ", ban, " lists no identifiers (apps); expected a list of identifiers per platform"]),
	}
}

# METADATA
# title: A ban in force whose identifiers are not listed per platform
# description: Its identifiers would match nothing, and the device would be allowed without a word.
rule_errors contains err if {
	some r in inheritance.rules
	apps := data.pyagent.bans[r.rule.ban].apps
	not is_object(apps)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.bans", r.rule.ban, "apps"]),
		"message": concat("", ["ban ", r.rule.ban, " lists its identifiers as ", json.marshal(apps), "; expected a list of identifiers per platform"]),
	}
}

# METADATA
# title: A ban in force whose identifiers are listed under a platform that does not exist
# description: An "Android" key would hide the ban from every Android device.
rule_errors contains err if {
	some r in inheritance.rules
	apps := data.pyagent.bans[r.rule.ban].apps
	is_object(apps)
	some platform, _ in apps
	not platform in report.platforms
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.bans", r.rule.ban, "apps"]),
		"message": concat("", ["ban ", r.rule.ban, " lists identifiers for unknown platform ", json.marshal(platform), "; expected one of ", concat(", ", sort(report.platforms))]),
	}
}

# METADATA
# title: A ban in force whose identifiers for the device's platform are not a list
rule_errors contains err if {
	some r in inheritance.rules
	ids := data.pyagent.bans[r.rule.ban].apps[matching.platform]
	not is_array(ids)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.bans", r.rule.ban, "apps", matching.platform]),
		"message": concat("", ["ban ", r.rule.ban, " lists its ", matching.platform, " identifiers as ", json.marshal(ids), "; expected a list of identifiers"]),
	}
}

# METADATA
# title: A ban in force that lists for the device's platform an identifier that is not text
# description: A number or a nested list (a slip in the data's YAML) would match no app.
rule_errors contains err if {
	some ban in breaches.bans_in_force
	ids := data.pyagent.bans[ban].apps[matching.platform]
	is_array(ids)
	some id in ids
	not is_string(id)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.bans", ban, "apps", matching.platform]),
		"message": concat("", ["ban ", ban, " lists ", json.marshal(id), " among its ", matching.platform, " identifiers; expected identifiers as text"]),
	}
}

# METADATA
# title: Work apps for the device's platform that list an identifier that is not text
# description: Only where a rule in force rests on work apps; it would match no app.
rule_errors contains err if {
	work_apps_in_force
	some source in work_app_sources
	[path, apps] := source
	ids := apps[matching.platform]
	is_array(ids)
	some id in ids
	not is_string(id)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", [path, matching.platform]),
		"message": concat("", ["work apps for ", matching.platform, " at ", path, " list ", json.marshal(id), "; expected identifiers as text"]),
	}
}

# METADATA
# title: Work apps, shared or of an organisation in the chain, not listed per platform as lists
# description: Only where a rule in force rests on work apps; they would match nothing.
rule_errors contains err if {
	work_apps_in_force
	some source in work_app_sources
	[path, apps] := source
	err := work_apps_error(path, apps)
}

# METADATA
# title: A rule in force rests on the device's work apps
work_apps_in_force if {
	some r in inheritance.rules
	"personal-with-work-apps" in object.get(r.rule, "scopes", [])
}

# METADATA
# title: Where work apps are listed, with what is listed there
work_app_sources contains ["pyagent.work_apps", data.pyagent.work_apps]

work_app_sources contains [concat(".", ["pyagent.organizations", name, "work_apps"]), apps] if {
	some name in inheritance.chain
	apps := inheritance.organizations[name].work_apps
}

# METADATA
# title: The error of work apps not listed per platform as lists
work_apps_error(path, apps) := {
	"code": "invalid_policy_data",
	"path": path,
	"message": concat("", ["work apps at ", path, " are ", json.marshal(apps), "; expected a list of identifiers per platform"]),
} if {
	not is_object(apps)
}

work_apps_error(path, apps) := {
	"code": "invalid_policy_data",
	"path": concat(".", [path, matching.platform]),
	"message": concat("", ["work apps for ", matching.platform, " at ", path, " are ", json.marshal(ids), "; expected a list of identifiers"]),
} if {
	ids := apps[matching.platform]
	not is_array(ids)
}

# METADATA
# title: A policy data error in a field of a rule
data_error(key, field, msg) := {
	"code": "invalid_policy_data",
	"path": concat(".", ["pyagent.organizations", split(key, "/")[0], "rules", split(key, "/")[1], field]),
	"message": msg,
}

# METADATA
# title: A rule names a ban the data defines
known_ban(rule) if matching.ban_indexed(rule.ban)

known_ban(rule) if {
	not matching.ban_indexed(rule.ban)
	data.pyagent.bans[rule.ban]
}

# METADATA
# title: A rule's enforcement is one of deny, warn and dryrun
known_enforcement(rule) if breaches.enforcement(rule) in breaches.enforcements

# METADATA
# title: A scope a rule may name
known_scope(s) if s in scopes.known
