# METADATA
# title: App-ban decision
# description: |
#   The decision for one device report: `allow`, the violations of rules in force, the
#   warnings (rules not in force yet, or in warn/dryrun mode), the exempted breaches, and
#   errors that make a decision impossible (unknown organisation, bad policy data, bad time).
#   Input: {"at": "<RFC 3339 evaluation time>", "report": <device report>}.
#   The decision echoes what it decided about (device_id, evaluated_at = input.at, and the
#   policy revision), so the agent can refuse an answer about another device or instant.
#   The agent adds engine and decision_id.
# entrypoint: true
package pyagent.decision

import data.pyagent.lib.breaches
import data.pyagent.lib.clock
import data.pyagent.lib.coverage
import data.pyagent.lib.exemptions
import data.pyagent.lib.inheritance
import data.pyagent.lib.layout
import data.pyagent.lib.report
import data.pyagent.lib.ruledata

# METADATA
# title: Device identifier
default device_id := null

device_id := input.report.device.id

# METADATA
# title: Instant decided for
# description: The evaluation time as given in the input (input.at), echoed unchanged.
default evaluated_at := null

evaluated_at := input.at

# METADATA
# title: Organisation decided for
default organization := null

organization := inheritance.organization

# METADATA
# title: Policy revision
# description: |
#   The revision the bundle was built as (`pyagent policy bundle --revision`, kept under
#   `data.pyagent_build`), else `data.pyagent.revision`.
default policy_revision := "unversioned"

policy_revision := data.pyagent_build.revision if {
	is_string(data.pyagent_build.revision)
} else := data.pyagent.revision

# METADATA
# title: Errors
# description: |
#   Anything that prevents a decision. A decision with errors never allows. Policy data loaded
#   under the wrong root, or not loaded, is the one error reported then (not an "unknown
#   organisation").
#   The first body is a shortcut for the common case, a well-formed report of an organisation the
#   index resolved, where every error source below is empty by construction (report.errors,
#   clock.errors, inheritance.errors and ruledata.errors; exemptions.errors is checked): it spares
#   OPA the unions and the sort.
errors := [] if {
	report.well_formed
	clock.valid
	inheritance.resolved
	count(exemptions.errors) == 0
	not layout.misplaced
} else := [err | some err in layout.errors] if {
	count(layout.errors) > 0
} else := [err |
	some x in sort([[e.code, e.message, e] | some e in ((((report.errors | clock.errors) | inheritance.errors) | exemptions.errors) | ruledata.errors)])
	err := x[2]
]

# METADATA
# title: Violations
# description: Rules in force that the device breaks.
violations := entries("violation")

# METADATA
# title: Warnings
# description: |
#   Rules the device would break that are not in force yet, or in warn/dryrun mode; and rules that
#   could not be checked because the inventory cannot list their apps (`coverage.unchecked`).
warnings := entries("warning") if {
	count(coverage.unchecked) == 0
} else := [x[2] | some x in sort([[w.rule, w.app_id, w] | some w in (coverage.unchecked | {b | some [k, b] in breaches.classified; k == "warning"})])]

# METADATA
# title: Exempted
# description: Violations waived by an exemption in force.
exempted := entries("exempted")

# METADATA
# title: Allow
# description: True only with no violation and no error.
allow := count(violations) == 0 if count(errors) == 0

allow := false if count(errors) > 0

# METADATA
# title: A decision's entries of one kind, sorted by rule and app
entries(kind) := [x[2] | some x in sort([[b.rule, b.app_id, b] | some [k, b] in breaches.classified; k == kind])]
