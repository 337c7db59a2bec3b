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
#   True when the string `ts` has the shape of a strict RFC 3339 timestamp (see the package): every
#   digit read as `0`, it starts with the date and time, then an optional fraction, then the zone.
strict(ts) if {
	shape := strings.replace_n(digits_as_zero, ts)
	startswith(shape, "0000-00-00T00:00:00")
	rest := substring(shape, 19, -1)
	zone := zone_shape(rest)
	fraction_shapes[trim_suffix(rest, zone)]
	offset_in_range(ts, zone)
}

# METADATA
# title: Every digit but zero, mapped to zero
digits_as_zero := {"1": "0", "2": "0", "3": "0", "4": "0", "5": "0", "6": "0", "7": "0", "8": "0", "9": "0"}

# METADATA
# title: The shapes of a fraction of a second
# description: None, or a point then 1 to 9 digits.
fraction_shapes := {"", ".0", ".00", ".000", ".0000", ".00000", ".000000", ".0000000", ".00000000", ".000000000"}

# METADATA
# title: The shape of the zone that ends a timestamp's shape
# description: "`Z`, or a numeric offset (`+00:00`, `-00:00`); undefined for anything else."
zone_shape(rest) := "Z" if {
	endswith(rest, "Z")
} else := zone if {
	count(rest) >= 6
	zone := substring(rest, count(rest) - 6, 6)
	zone in {"+00:00", "-00:00"}
}

# METADATA
# title: Offset in range
# description: A numeric offset's hours below 24 and its minutes below 60.
offset_in_range(_, "Z") := true

offset_in_range(ts, zone) if {
	zone != "Z"
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
