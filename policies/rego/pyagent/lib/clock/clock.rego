# METADATA
# title: Evaluation clock
# description: |
#   The instant a decision is made for. It comes from the input (`input.at`, RFC 3339),
#   never from the wall clock, so that every decision can be replayed.
#   Timestamps are strict RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `±HH:MM`,
#   upper-case `T` and `Z`, a fraction of 1 to 9 digits, offsets below 24:00), within the range of a
#   signed 64-bit count of nanoseconds: `strict` refuses what `time.parse_rfc3339_ns` alone would
#   accept (Go's lenient offsets such as `+24:00`); the built-in refuses impossible dates and times.
#   `strict` reads a timestamp's shape with string built-ins, not a regular expression: a compiled
#   policy (`opa build -t wasm`) compiles a pattern again on every evaluation, a fifth of the
#   embedded engine's decision. The tests hold it to the pattern
#   `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`.
package pyagent.lib.clock

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
	strict(ts)
	n := time.parse_rfc3339_ns(ts)
}

# METADATA
# title: Strict RFC 3339
# description: |
#   True when the string `ts` has the shape of a strict RFC 3339 timestamp (see the package): with
#   every digit read as `0`, it is one of the 30 shapes listed (no fraction or 1 to 9 digits of one,
#   then `Z`, `+00:00` or `-00:00`), and a numeric offset is in range. The map and the shapes are
#   written in the body, not as rules of their own: OPA evaluates a rule on its first use in every
#   query, and this runs in every decision.
strict(ts) if {
	shape := strings.replace_n({"1": "0", "2": "0", "3": "0", "4": "0", "5": "0", "6": "0", "7": "0", "8": "0", "9": "0"}, ts)
	shape in {
		"0000-00-00T00:00:00Z", "0000-00-00T00:00:00+00:00", "0000-00-00T00:00:00-00:00",
		"0000-00-00T00:00:00.0Z", "0000-00-00T00:00:00.0+00:00", "0000-00-00T00:00:00.0-00:00",
		"0000-00-00T00:00:00.00Z", "0000-00-00T00:00:00.00+00:00", "0000-00-00T00:00:00.00-00:00",
		"0000-00-00T00:00:00.000Z", "0000-00-00T00:00:00.000+00:00", "0000-00-00T00:00:00.000-00:00",
		"0000-00-00T00:00:00.0000Z", "0000-00-00T00:00:00.0000+00:00", "0000-00-00T00:00:00.0000-00:00",
		"0000-00-00T00:00:00.00000Z", "0000-00-00T00:00:00.00000+00:00", "0000-00-00T00:00:00.00000-00:00",
		"0000-00-00T00:00:00.000000Z", "0000-00-00T00:00:00.000000+00:00", "0000-00-00T00:00:00.000000-00:00",
		"0000-00-00T00:00:00.0000000Z", "0000-00-00T00:00:00.0000000+00:00", "0000-00-00T00:00:00.0000000-00:00",
		"0000-00-00T00:00:00.00000000Z", "0000-00-00T00:00:00.00000000+00:00", "0000-00-00T00:00:00.00000000-00:00",
		"0000-00-00T00:00:00.000000000Z", "0000-00-00T00:00:00.000000000+00:00", "0000-00-00T00:00:00.000000000-00:00",
	}
	offset_in_range(ts)
}

# METADATA
# title: Offset in range
# description: |
#   For a timestamp of a strict shape: `Z`, or a numeric offset whose hours are below 24 and
#   minutes below 60.
offset_in_range(ts) if {
	endswith(ts, "Z")
} else if {
	to_number(substring(ts, count(ts) - 5, 2)) < 24
	to_number(substring(ts, count(ts) - 2, 2)) < 60
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
