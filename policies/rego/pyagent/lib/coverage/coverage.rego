# METADATA
# title: Inventory coverage
# description: |
#   What a device's inventory could not see. A collector that cannot list a kind of app says so
#   in the report (`collector.not_listed`): `windows-store`, the Microsoft Store (MSIX) apps, which
#   osquery's `programs` table lists only from 5.17 (`package_family_name`); `unmanaged-apps`, every
#   app the organisation does not manage, which an MDM's inventory of a personal device or of a work
#   profile leaves out (the personal side of the phone, where a banned app would be). A rule that applies to the device and
#   whose ban lists such an app is then not checked: a warning (reason `not_listed`), never a pass
#   in silence, and never a verdict either (the app may not be there).
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
	kind in {"windows-store", "unmanaged-apps"}
}

# METADATA
# title: What an inventory that cannot list a kind of app leaves unchecked, and what to do
# description: |
#   `platforms`: where the kind exists (an empty set: every platform); `what`: why the ban could not
#   be checked; `remediation`: how to take an inventory that lists them.
kinds := {
	"windows-store": {
		"platforms": {"windows"},
		"what": "the inventory does not list Microsoft Store apps",
		"remediation": "Take the inventory again with a collector that lists Store apps (osquery 5.17 or later: programs.package_family_name).",
	},
	"unmanaged-apps": {
		"platforms": set(),
		"what": "the inventory lists only the apps the organisation manages (an MDM's, of a personal device or a work profile), not the rest of the device",
		"remediation": "Take the inventory on the device itself (pyagent collect, or adb shell pm list packages), which lists every app: an MDM cannot see the personal side of a phone.",
	},
}

# METADATA
# title: A kind of app exists on the platform
# description: Its `platforms`, or every platform when they are none.
on_platform(platforms, _) if count(platforms) == 0

on_platform(platforms, platform) if platform in platforms

# METADATA
# title: The identifiers of a ban that an inventory without a kind of app cannot find
# description: A ban's identifiers for the platform; for Store apps, only its Store ones.
unseen_ids(kind, ban, platform) := [id |
	some id in object.get(object.get(data.pyagent.bans[ban], "apps", {}), platform, [])
	store_id(id)
] if {
	kind == "windows-store"
} else := object.get(object.get(data.pyagent.bans[ban], "apps", {}), platform, [])

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
#   One warning per kind of app the inventory cannot list and rule that applies to the device (its
#   scope, whether in force yet or not), whose ban lists such apps on the device's platform, that the
#   device was not found to break, and that no exemption waives: `app_id` is the first of them.
unchecked contains entry if {
	some kind in not_listed
	platform := matching.platform
	on_platform(kinds[kind].platforms, platform)
	clock.valid
	some key, r in inheritance.rules
	rule := r.rule
	scope := scopes.scope_of(rule)
	not found_ban(rule.ban)
	not exemptions.in_force[rule.ban]
	ids := unseen_ids(kind, rule.ban, platform)
	count(ids) > 0
	entry := {
		"rule": key,
		"ban": rule.ban,
		"app_id": ids[0],
		"message": concat("", [
			messages.ban_field(rule.ban, "title", rule.ban), " (", concat(", ", ids), ") could not be checked on ",
			scope, " devices of ", messages.org_title, ": ", kinds[kind].what,
		]),
		"remediation": kinds[kind].remediation,
		"effective_from": object.get(rule, "effective_from", null),
		"scope": scope,
		"enforcement": breaches.enforcement(rule),
		"reason": "not_listed",
	}
}
