# METADATA
# title: App identifier matching
# description: |
#   Matches a device's apps against lists of identifiers for its platform, on IDs only,
#   never on display names. Android and Linux IDs match exactly. iOS and macOS bundle IDs
#   and Windows IDs match case-insensitively. A Windows package family name
#   (`Name_PublisherHash`) matches with or without its publisher-hash suffix, and so does
#   a package full name (`Name_Version_Arch__PublisherHash`).
package pyagent.lib.matching

# METADATA
# title: Platforms whose IDs ignore case
case_insensitive := {"ios", "macos", "windows"}

# METADATA
# title: The device's platform
platform := input.report.device.platform

# METADATA
# title: Normalised identifier
# description: An identifier as [name, publisher-hash]; the hash is "" when there is none.
key(id) := [name, hash] if {
	platform == "windows"
	parts := split(lower(id), "_")
	name := parts[0]
	hash := publisher_hash(parts)
} else := [lower(id), ""] if {
	platform in case_insensitive
} else := [id, ""]

publisher_hash(parts) := parts[count(parts) - 1] if count(parts) > 1

publisher_hash(parts) := "" if count(parts) == 1

# METADATA
# title: Lookup keys of a list of identifiers
# description: |
#   Each identifier gives its exact key and a wildcard key [name, "*"], so that an app ID
#   without a publisher hash finds every listed ID with the same name, in one lookup.
index(ids) := {k |
	some id in ids
	[name, hash] := key(id)
	some k in [[name, hash], [name, "*"]]
}

# METADATA
# title: Does an app ID match an index
# description: True when `id` matches one of the identifiers behind `idx` (built by `index`).
matches(idx, id) if {
	[name, hash] := key(id)
	hash == ""
	[name, "*"] in idx
}

matches(idx, id) if {
	[name, hash] := key(id)
	hash != ""
	[name, hash] in idx
}

matches(idx, id) if {
	[name, hash] := key(id)
	hash != ""
	[name, ""] in idx
}
