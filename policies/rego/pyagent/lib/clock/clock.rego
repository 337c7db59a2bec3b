# METADATA
# title: Evaluation clock
# description: |
#   The instant a decision is made for. It comes from the input (`input.at`, RFC 3339),
#   never from the wall clock, so that every decision can be replayed.
package pyagent.lib.clock

# METADATA
# title: Evaluation time in nanoseconds
# description: Undefined when `input.at` is missing or not RFC 3339.
now_ns := time.parse_rfc3339_ns(input.at)

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
reached(ts) if time.parse_rfc3339_ns(ts) <= now_ns

# METADATA
# title: Still ahead
# description: True when the RFC 3339 timestamp `ts` is strictly after the evaluation time.
ahead(ts) if time.parse_rfc3339_ns(ts) > now_ns

# METADATA
# title: Valid timestamp
# description: True when `ts` is an RFC 3339 timestamp.
valid_time(ts) if time.parse_rfc3339_ns(ts)
