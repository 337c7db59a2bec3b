# METADATA
# title: Breach messages
# description: |
#   What a breach tells the device's owner: the message ("<app> is banned on <scope> devices of
#   <organisation>[ from <date>]: <reason>", with a note when a match rests on display names) and the
#   remediation (the rule's own, else "Uninstall <app> from this device.").
package pyagent.lib.messages

import data.pyagent.lib.inheritance
import data.pyagent.lib.scopes

# METADATA
# title: A field of a ban
# description: Read one by one, never the whole ban, whose identifier lists may be long.
ban_field(ban, field, fallback) := value if {
	value := data.pyagent.bans[ban][field]
	is_string(value)
} else := fallback

# METADATA
# title: The app as a message names it
# description: Its name and id, or, without a name, its ban's title and its id.
label(rule, app) := concat("", [app.name, " (", app.id, ")"]) if {
	is_string(app.name)
} else := concat("", [ban_field(rule.ban, "title", rule.ban), " (", app.id, ")"])

# METADATA
# title: The device's organisation as a message names it
# description: Its title, else its id.
org_title := title if {
	title := inheritance.organizations[inheritance.organization].title
	is_string(title)
} else := inheritance.organization

# METADATA
# title: A breach's message
message(key, rule, scope, app) := concat("", [
	label(rule, app), " is banned on ", scope, message_tail(key, rule), evidence_note(app),
	scope_note(scope),
])

# METADATA
# title: What a breach's message says after the scope
# description: |
#   " devices of <organisation title>[ from <effective_from>]: <reason>", which the data alone
#   decides: the shipped index carries it for each rule of a resolved organisation (written by
#   `pyagent/policy/orgindex.py`, checked against this text by the test suite), else it is written now.
message_tail(key, rule) := tail if {
	tail := inheritance.resolved.message_tails[key]
	is_string(tail) # a tampered index must not make concat fail and the breach disappear
} else := concat("", [" devices of ", org_title, " from ", rule.effective_from, ": ", reason(rule)]) if {
	rule.effective_from
} else := concat("", [" devices of ", org_title, ": ", reason(rule)])

# METADATA
# title: Why a rule bans its app
# description: The rule's own reason (an organisation bans for reasons of its own), else its ban's.
reason(rule) := rule.reason if {
	is_string(rule.reason)
} else := ban_field(rule.ban, "reason", "policy")

# METADATA
# title: What the message says of a match made from a display name
# description: |
#   An app whose ID a collector derived from its display name (`evidence: display_name`, e.g. from
#   Microsoft Graph detectedApps) matched on weaker evidence than a package ID, and the message says so.
evidence_note(app) := " (matched from a display name, not a package ID: weaker evidence)" if {
	app.evidence == "display_name"
} else := ""

# METADATA
# title: What a breach's message says of a scope resting on weaker evidence
scope_note(scope) := " (the device's work apps were matched from display names, not package IDs: weaker evidence)" if {
	scope == "personal-with-work-apps"
	scopes.work_apps_by_name_only
} else := ""

# METADATA
# title: What the device's owner is told to do
# description: The rule's own remediation, else to uninstall the app.
remediation(rule, app) := rule.remediation if {
	rule.remediation
} else := concat("", ["Uninstall ", label(rule, app), " from this device."]) if {
	not rule.remediation
}
