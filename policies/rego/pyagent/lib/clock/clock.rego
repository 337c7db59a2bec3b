# METADATA
# title: Evaluation clock
# description: |
#   The instant a decision is made for. It comes from the input (`input.at`, RFC 3339),
#   never from the wall clock, so that every decision can be replayed.
#   Timestamps are parsed here, in Rego, as strict RFC 3339
#   (`YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `±HH:MM`), within the range of a signed
#   64-bit count of nanoseconds. For such timestamps the result equals `time.parse_rfc3339_ns`;
#   parsing in Rego keeps the policy free of built-ins that a WebAssembly host must supply.
package pyagent.lib.clock

rfc3339 := `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`

# METADATA
# title: Nanoseconds since the Unix epoch of an RFC 3339 timestamp
# description: Undefined when `ts` is not a strict RFC 3339 timestamp or is out of range.
ns(ts) := n if {
	data.pyagent_index.format == 1
	n := data.pyagent_index.times[ts]
} else := parse_ns(ts)

# METADATA
# title: Nanoseconds since the epoch, parsed
# description: What `ns` gives when the shipped ban index has no entry for `ts`.
parse_ns(ts) := n if {
	is_string(ts)
	regex.match(rfc3339, ts)
	year := digits_value(substring(ts, 0, 4))
	month := digits_value(substring(ts, 5, 2))
	day := digits_value(substring(ts, 8, 2))
	hour := digits_value(substring(ts, 11, 2))
	minute := digits_value(substring(ts, 14, 2))
	second := digits_value(substring(ts, 17, 2))
	month >= 1
	month <= 12
	day >= 1
	day <= days_in_month(year, month)
	hour <= 23
	minute <= 59
	second <= 59
	tail := substring(ts, 19, -1)
	offset := offset_seconds(tail)
	seconds := ((((((days_from_civil(year, month, day) * 24) + hour) * 60) + minute) * 60) + second) - offset
	n := (seconds * 1000000000) + fraction_ns(tail)
	n >= -9223372036854775808
	n <= 9223372036854775807
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

leap(year) if {
	year % 4 == 0
	year % 100 != 0
}

leap(year) if year % 400 == 0

days_in_month(year, 2) := 29 if leap(year)

days_in_month(year, 2) := 28 if not leap(year)

days_in_month(_, month) := 30 if month in {4, 6, 9, 11}

days_in_month(_, month) := 31 if month in {1, 3, 5, 7, 8, 10, 12}

# Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil).
days_from_civil(year, month, day) := days if {
	# Howard Hinnant's days_from_civil. Every division is exact (a - a % b is a multiple of b, all
	# operands non-negative: the year is shifted by one era of 400 years), which OPA computes much
	# faster than floor() of a fraction.
	y := (year - january_or_february(month)) + 400
	era := ((y - (y % 400)) / 400) - 1
	yoe := y % 400
	mp := (month + 9) % 12
	doy := (((((153 * mp) + 2) - (((153 * mp) + 2) % 5)) / 5) + day) - 1
	doe := (((yoe * 365) + ((yoe - (yoe % 4)) / 4)) - ((yoe - (yoe % 100)) / 100)) + doy
	days := ((era * 146097) + doe) - 719468
}

offset_seconds(tail) := 0 if endswith(tail, "Z")

offset_seconds(tail) := sign * (((hours * 60) + minutes) * 60) if {
	not endswith(tail, "Z")
	zone := substring(tail, count(tail) - 6, 6)
	sign := {"+": 1, "-": -1}[substring(zone, 0, 1)]
	hours := digits_value(substring(zone, 1, 2))
	minutes := digits_value(substring(zone, 4, 2))
	hours <= 23
	minutes <= 59
}

fraction_ns(tail) := 0 if not startswith(tail, ".")

fraction_ns(tail) := digits_value(substring(concat("", [digits, "000000000"]), 0, 9)) if {
	startswith(tail, ".")
	digits := substring(tail, 1, (count(tail) - 1) - zone_length(tail))
}

january_or_february(month) := 1 if month <= 2

january_or_february(month) := 0 if month > 2

zone_length(tail) := 1 if endswith(tail, "Z")

zone_length(tail) := 6 if not endswith(tail, "Z")

# METADATA
# title: A run of decimal digits as a number
# description: |
#   Read with a leading 1 that is then taken off: `to_number("03")` keeps the written form "03",
#   which OPA cannot print as JSON (`opa test --format json --var-values` would fail on it).
digits_value(s) := to_number(concat("", ["1", s])) - powers_of_ten[count(s)]

powers_of_ten := [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000]
