# METADATA
# title: Clock tests
# description: The evaluation time comes from input only.
package pyagent.lib.clock_test

import data.pyagent.lib.clock

test_now_from_input if {
	clock.now_ns == 1678924800000000000 with input as {"at": "2023-03-16T00:00:00Z"}
}

test_reached_is_inclusive if {
	clock.reached("2023-03-16T00:00:00Z") with input as {"at": "2023-03-16T00:00:00Z"}
}

test_ahead_is_strict if {
	not clock.ahead("2023-03-16T00:00:00Z") with input as {"at": "2023-03-16T00:00:00Z"}
}

test_missing_time_has_an_error if {
	[e.code | some e in clock.errors] == ["invalid_time"] with input as {}
}

test_valid_time_has_no_error if {
	clock.errors == set() with input as {"at": "2023-03-16T00:00:00+02:00"}
}
