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
# description: An identifier as [name, publisher-hash] for the device's platform; the hash is "" when there is none.
key(id) := key_for(platform, id)

# METADATA
# title: Normalised identifier on a platform
key_for(p, id) := [name, hash] if {
	p == "windows"
	parts := split(lower(id), "_")
	name := parts[0]
	hash := publisher_hash(parts)
} else := [lower(id), ""] if {
	p in case_insensitive
} else := [id, ""]

# METADATA
# title: The publisher hash of a Windows identifier split at its underscores
# description: The last part, or none for a name without one.
publisher_hash(parts) := parts[count(parts) - 1] if count(parts) > 1

publisher_hash(parts) := "" if count(parts) == 1

# METADATA
# title: What joins a name and a hash into one lookup key
# description: NUL, which never occurs in an identifier (the report schema forbids it), so two different pairs never give the same key.
separator := "\u0000"

# METADATA
# title: One lookup key from a name and a publisher hash
lookup_key(name, hash) := concat(separator, [name, hash])

# METADATA
# title: Lookup index of a list of identifiers on a platform
# description: |
#   An object whose keys are the identifiers' lookup keys. Each identifier gives its exact key and
#   a wildcard key (name, "*"), so that an app ID without a publisher hash finds every listed ID
#   with the same name in one lookup. An object, not a set, so that it can be kept as data.
index_for(p, ids) := {k: true |
	some id in ids
	[name, hash] := key_for(p, id)
	some k in [lookup_key(name, hash), lookup_key(name, "*")]
}

# METADATA
# title: Lookup index of a list of identifiers on the device's platform
index(ids) := index_for(platform, ids)

# METADATA
# title: Lookup keys of an app ID
# description: |
#   The keys under which an index lists an identifier that `id` matches: the wildcard key of its
#   name when `id` has no publisher hash, else its exact key and its name without a hash.
lookup_keys(id) := [lookup_key(name, "*")] if {
	[name, hash] := key(id)
	hash == ""
} else := [lookup_key(name, hash), lookup_key(name, "")] if {
	[name, hash] := key(id)
}

# METADATA
# title: Does an app ID match an index
# description: True when `id` matches one of the identifiers behind `idx` (built by `index`). A hash lookup.
matches(idx, id) if {
	some k in lookup_keys(id)
	idx[k]
}

# METADATA
# title: The shipped ban index
# description: |
#   `data.pyagent_index`, built from the policy data when the bundle is built (`pyagent policy
#   bundle`, `pyagent/policy/index.py`) and checked against it there: for each platform, every
#   banned identifier's lookup key mapped to the bans that list it; the work apps likewise. Read
#   only by ground key, so that a decision reads one entry per app, never the whole index.
shipped if data.pyagent_index.format == 4

# METADATA
# title: Is a ban in the shipped index
ban_indexed(ban) if {
	shipped
	data.pyagent_index.indexed_bans[ban] == true
}

# METADATA
# title: Platforms whose IDs are looked up as they are
# description: |
#   Every platform but those of `case_insensitive` (a test holds the two together), written as a
#   lookup in a literal rather than a negated membership of that rule: this runs in every decision.
exact_platform if object.get({"ios": false, "macos": false, "windows": false}, platform, true)

# METADATA
# title: Keys of an app ID in the shipped index
# description: |
#   The ID itself where IDs match exactly, lower-cased where they ignore case, and on Windows
#   the `lookup_keys`.
index_keys(id) := [id] if {
	exact_platform
} else := lookup_keys(id) if {
	platform == "windows"
} else := [lower(id)]
