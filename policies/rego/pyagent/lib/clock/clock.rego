# METADATA
# title: Evaluation clock
# description: |
#   The instant a decision is made for. It comes from the input (`input.at`, RFC 3339),
#   never from the wall clock, so that every decision can be replayed.
#   Timestamps are strict RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `±HH:MM`,
#   upper-case `T` and `Z`, offsets below 24:00), within the range of a signed 64-bit count of
#   nanoseconds: the pattern below refuses what `time.parse_rfc3339_ns` alone would accept
#   (Go's lenient offsets such as `+24:00`); the built-in refuses impossible dates and times.
package pyagent.lib.clock

rfc3339 := `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`

# METADATA
# title: Nanoseconds since the Unix epoch of an RFC 3339 timestamp
# description: Undefined when `ts` is not a strict RFC 3339 timestamp or is out of range.
ns(ts) := n if {
	data.pyagent_index.format == 4
	n := data.pyagent_index.times[ts]
} else := parse_ns(ts)

# METADATA
# title: Nanoseconds since the epoch, parsed
# description: What `ns` gives when the shipped ban index has no entry for `ts`.
parse_ns(ts) := n if {
	is_string(ts)
	regex.match(rfc3339, ts)
	n := time.parse_rfc3339_ns(ts)
}

# METADATA
# title: Evaluation time in nanoseconds
# description: Undefined when `input.at` is missing or not RFC 3339.
now_ns := ns(input.at)

# METADATA
# title: Evaluation time is usable
valid if now_ns

# METADATA
# title: Clock errors
# description: A missing or malformed evaluation time is an error, never a default.
errors contains err if {
	not valid
	err := {
		"code": "invalid_time",
		"message": concat("", ["evaluation time input.at must be an RFC 3339 timestamp, got ", json.marshal(object.get(input, "at", null))]),
	}
}

# METADATA
# title: In force
# description: True when the RFC 3339 timestamp `ts` is at or before the evaluation time.
reached(ts) if ns(ts) <= now_ns

# METADATA
# title: Still ahead
# description: True when the RFC 3339 timestamp `ts` is strictly after the evaluation time.
ahead(ts) if ns(ts) > now_ns

# METADATA
# title: Valid timestamp
# description: True when `ts` is an RFC 3339 timestamp.
valid_time(ts) if ns(ts)
