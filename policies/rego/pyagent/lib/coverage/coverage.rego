# METADATA
# title: Inventory coverage
# description: |
#   What a device's inventory could not see. A collector that cannot list a kind of app says so
#   in the report (`collector.not_listed`): `windows-store`, the Microsoft Store (MSIX) apps, which
#   osquery's `programs` table lists only from 5.17 (`package_family_name`). A rule that applies
#   to the device and whose ban lists such an app is then not checked: a warning (reason
#   `not_listed`), never a pass in silence, and never a verdict either (the app may not be there).
package pyagent.lib.coverage

import data.pyagent.lib.breaches
import data.pyagent.lib.clock
import data.pyagent.lib.exemptions
import data.pyagent.lib.inheritance
import data.pyagent.lib.matching
import data.pyagent.lib.messages
import data.pyagent.lib.scopes

# METADATA
# title: Kinds of app the report says its collector could not list
not_listed contains kind if {
	some kind in input.report.collector.not_listed
	kind in {"windows-store"}
}

# METADATA
# title: A Microsoft Store app's identifier
# description: |
#   A package family name (`Name_PublisherHash`, the hash 13 characters) or a Store product ID
#   (`9` and 11 letters or digits, or `XP` and 12).
store_id(id) if {
	parts := split(id, "_")
	count(parts) == 2
	count(parts[1]) == 13
}

store_id(id) if {
	some [prefix, length] in {["9", 12], ["XP", 14]}
	count(id) == length
	startswith(upper(id), prefix)
	not contains(id, ".")
	not contains(id, "_")
}

# METADATA
# title: A ban found on the device
# description: Its breach says enough; nothing is left unchecked about it.
found_ban(ban) if {
	some pair in breaches.found
	pair[0] == ban
}

# METADATA
# title: Rules not checked for want of an inventory that lists their apps
# description: |
#   One warning per rule that applies to the device (its scope, whether in force yet or not), whose
#   ban lists Store apps for Windows, that the device was not found to break, and that no
#   exemption waives: `app_id` is the ban's first Store identifier.
unchecked contains entry if {
	"windows-store" in not_listed
	matching.platform == "windows"
	clock.valid
	some key, r in inheritance.rules
	rule := r.rule
	scope := scopes.scope_of(rule)
	not found_ban(rule.ban)
	not exemptions.in_force[rule.ban]
	ids := [id | some id in object.get(object.get(data.pyagent.bans[rule.ban], "apps", {}), "windows", []); store_id(id)]
	count(ids) > 0
	entry := {
		"rule": key,
		"ban": rule.ban,
		"app_id": ids[0],
		"message": concat("", [
			messages.ban_field(rule.ban, "title", rule.ban), " (", concat(", ", ids), ") could not be checked on ",
			scope, " devices of ", messages.org_title, ": the inventory does not list Microsoft Store apps",
		]),
		"remediation": "Take the inventory again with a collector that lists Store apps (osquery 5.17 or later: programs.package_family_name).",
		"effective_from": object.get(rule, "effective_from", null),
		"scope": scope,
		"enforcement": breaches.enforcement(rule),
		"reason": "not_listed",
	}
}
