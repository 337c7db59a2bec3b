# METADATA
# title: Clock tests
# description: The evaluation time comes from input only; timestamps parse exactly as OPA's own parser.
package pyagent.lib.clock_test

import data.pyagent.lib.clock
import data.pyagent.lib.testdata_test as testdata

valid_timestamps := [
	"2023-03-15T00:00:00Z",
	"2023-03-14T23:59:59.999999999Z",
	"2023-03-15T01:00:00+01:00",
	"2023-03-14T19:00:00-05:00",
	"2022-12-29T00:00:00Z",
	"2020-06-29T00:00:00Z",
	"2024-02-29T12:00:00Z",
	"2000-02-29T00:00:00Z",
	"1970-01-01T00:00:00Z",
	"1969-12-31T23:59:59.5Z",
	"1900-03-01T00:00:00Z",
	"2262-04-11T23:47:16.854775807Z",
	"1677-09-21T00:12:43.145224192Z",
	"2023-03-16T09:30:00.1Z",
	"2023-03-16T09:30:00.123456+02:30",
	"2023-12-31T23:59:59-23:59",
]

invalid_timestamps := [
	"2023-03-16", "2023-03-16T09:30:00", "16/03/2023", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
	"2023-13-01T00:00:00Z", "2023-00-10T00:00:00Z", "2023-04-31T00:00:00Z", "2023-03-16T24:00:00Z",
	"2023-03-16T09:60:00Z", "2023-03-16T09:30:60Z", "2023-03-16t09:30:00z", "2023-03-16T09:30:00.Z",
	"2023-03-16T09:30:00.1234567891Z", "2023-03-16T09:30:00+24:00", "2023-03-16T09:30:00+01:60",
	"2262-04-11T23:47:16.854775808Z", " 2023-03-16T09:30:00Z", "2023-03-16T09:30:00Z ", "",
]

test_parses_like_opa_time_parse_rfc3339_ns if {
	every ts in valid_timestamps {
		clock.ns(ts) == time.parse_rfc3339_ns(ts)
	}
}

test_rejects_what_is_not_strict_rfc3339 if {
	every ts in invalid_timestamps {
		not clock.valid_time(ts)
	}
}

test_rejects_non_strings if {
	not clock.valid_time(1678924800)
	not clock.valid_time(null)
}

test_now_from_input if {
	clock.now_ns == 1678924800000000000
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
}

test_reached_is_inclusive if {
	clock.reached("2023-03-16T00:00:00Z")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
}

test_ahead_is_strict if {
	not clock.ahead("2023-03-16T00:00:00Z")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
}

test_missing_time_has_an_error if {
	clock.errors == {{"code": "invalid_time", "message": "evaluation time input.at must be an RFC 3339 timestamp, got null"}}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {}
}

test_valid_time_has_no_error if {
	clock.errors == set()
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00+02:00"}
}

test_ns_reads_the_shipped_index if {
	times := {"format": 4, "times": {"2023-03-15T00:00:00Z": 7}}
	clock.ns("2023-03-15T00:00:00Z") == 7 with data.pyagent_index as times
	clock.ns("2023-03-16T00:00:00Z") == 1678924800000000000 with data.pyagent_index as times
	clock.ns("2023-03-15T00:00:00Z") == 1678838400000000000 with data.pyagent_index as {"format": 1, "times": times.times}
}

test_reached_and_ahead_one_nanosecond_either_side if {
	clock.reached("2023-03-16T00:00:00Z")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
	not clock.reached("2023-03-16T00:00:00.000000001Z")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
	clock.ahead("2023-03-16T00:00:00.000000001Z")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
	not clock.ahead("2023-03-16T00:00:00Z")
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as {"at": "2023-03-16T00:00:00Z"}
}

# The shape `clock.strict` reads, as the pattern it stands for.
pattern := `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`

# Strings at each edge of the shape: fraction lengths, zones, offsets, separators, other digits.
shapes := [
	"2023-03-16T09:30:00.123456789Z", "2023-03-16T09:30:00.1234567890Z", "2023-03-16T09:30:00.+01:00",
	"2023-03-16T09:30:00.5-23:59", "2023-03-16T09:30:00+23:60", "2023-03-16T09:30:00-24:00",
	"2023-03-16T09:30:00+19:59", "2023-03-16T09:30:00+0100", "2023-03-16T09:30:00+01:00Z",
	"2023-03-16T09:30:00Z+01:00", "2023-03-16T09:30:00ZZ", "2023-03-16T09:30:00z",
	"2023-03-16T09:30:00,5Z", "2023-03-16T09:30:00.5.5Z", "2023-03-16 09:30:00Z", "2023-03-16T9:30:00Z",
	"20230-03-16T09:30:00Z", "2023-03-16T09:30:00Z\n", "\n2023-03-16T09:30:00Z", "2023-03-16T09:30:00",
	"2023-03-16T09:30:00+", "2023-03-16T09:30:00+01", "Z", "+01:00", "2023-03-16T09:30:0Z",
	"٢٠٢٣-03-16T09:30:00Z", "２０２３-03-16T09:30:00Z", "2023-03-16T09:30:00.٥Z", "9999-99-99T99:99:99Z",
	"0000-00-00T00:00:00-00:00", "2023-03-16T09:30:00\u00a0Z", "2023-03-16T09:30:00+01:00 ",
]

strict_of(ts) if clock.strict(ts)

else := false

test_strict_is_the_pattern if {
	every ts in array.concat(array.concat(valid_timestamps, invalid_timestamps), shapes) {
		strict_of(ts) == regex.match(pattern, ts)
	}
}

test_strict_accepts_exactly_these_shapes if {
	[ts | some ts in shapes; strict_of(ts)] == [
		"2023-03-16T09:30:00.123456789Z", "2023-03-16T09:30:00.5-23:59",
		"2023-03-16T09:30:00+19:59", "9999-99-99T99:99:99Z", "0000-00-00T00:00:00-00:00",
	]
}
