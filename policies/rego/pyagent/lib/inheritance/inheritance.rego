# METADATA
# title: Organisations and rule inheritance
# description: |
#   Resolves the device's organisation, the organisations it inherits from (transitively),
#   and the rules in force for it. A rule of an organisation overrides an inherited rule
#   with the same id. A cycle in `inherits` is an error, not a hang.
package pyagent.lib.inheritance

# METADATA
# title: Known organisations
# description: None when the data does not key them by id (an error below says so).
default organizations := {}

organizations := data.pyagent.organizations if is_object(data.pyagent.organizations)

# METADATA
# title: Inheritance graph
# description: Each organisation mapped to the organisations it inherits from.
graph_edges := {name: parents(org) | some name, org in organizations}

# METADATA
# title: The organisations one inherits from, as its data lists them
# description: None for an organisation that is not an object (an error says so).
parents(org) := object.get(org, "inherits", []) if {
	is_object(org)
} else := []

# METADATA
# title: The device's organisation
# description: Undefined when the report names none.
organization := input.report.device.organization

# METADATA
# title: Organisation is known
known if organizations[organization]

# METADATA
# title: Inheritance chain
# description: The organisation itself and every organisation it inherits from, transitively.
chain := {name | some name in resolved.chain} if {
	resolved
} else := graph.reachable(graph_edges, {organization}) if known

# METADATA
# title: The organisation as the shipped ban index resolved it
# description: |
#   `data.pyagent_index.resolved_orgs[organization]`: its chain and rules, resolved when the bundle was
#   built (`pyagent/policy/orgindex.py`), only for an organisation in whose chain and rules this policy
#   finds no error. Undefined otherwise (and without the index): the rules here resolve it per decision.
resolved := data.pyagent_index.resolved_orgs[organization] if data.pyagent_index.format == 4

# METADATA
# title: The device's organisation and those in its chain, where the data lists them
organizations_in_force := {name | some name in chain} | {organization | known}

# METADATA
# title: Ancestors of an organisation
ancestors(name) := graph.reachable(graph_edges, object.get(graph_edges, name, []))

# METADATA
# title: Organisations in a cycle
cycle := {name | some name in chain; name in ancestors(name)}

# METADATA
# title: Inherited organisations that do not exist
unknown_parents := {parent | some name in chain; some parent in graph_edges[name]; not organizations[parent]}

# METADATA
# title: Rules in force for the organisation
# description: |
#   Keyed by "<owner>/<rule-id>", where owner is the organisation that defines the rule.
#   A rule is dropped when an organisation lower in the chain defines a rule with the same id.
rules := resolved.rules if {
	resolved
} else := resolved_now

# METADATA
# title: Rules in force for the organisation, resolved per decision
resolved_now[key] := {"owner": owner, "id": id, "rule": rule} if {
	count(cycle) == 0
	some owner in chain
	some id, rule in object.get(organizations[owner], "rules", {})
	not overridden(owner, id)
	key := concat("/", [owner, id])
}

# METADATA
# title: A rule of an organisation overridden by a nearer one of the same id
overridden(owner, id) if {
	some other in chain
	other != owner
	organizations[other].rules[id]
	owner in ancestors(other)
}

# METADATA
# title: Inheritance errors
# description: None for an organisation the shipped index resolved (it resolves only those without).
errors := set() if {
	resolved
} else := errors_now

# METADATA
# title: Inheritance errors, found per decision
errors_now contains err if {
	not organization
	err := {
		"code": "missing_organization",
		"message": "the report names no organisation (device.organization) and none was given",
	}
}

errors_now contains err if {
	organization
	not known
	err := {
		"code": "unknown_organization",
		"organization": organization,
		"message": concat("", ["unknown organisation ", json.marshal(organization), "; known: ", concat(", ", sort(object.keys(organizations)))]),
	}
}

errors_now contains err if {
	count(cycle) > 0
	members := sort(cycle)
	err := {
		"code": "inheritance_cycle",
		"organizations": members,
		"message": concat("", ["organisations inherit from each other in a cycle: ", concat(", ", members)]),
	}
}

errors_now contains err if {
	listed := data.pyagent.organizations
	not is_object(listed)
	err := {
		"code": "invalid_policy_data",
		"path": "pyagent.organizations",
		"message": concat("", ["the organisations are ", json.marshal(listed), "; expected organisations keyed by their id"]),
	}
}

errors_now contains err if {
	some name in organizations_in_force
	not is_object(organizations[name]) # null, a string or a list holds no rule: allowed without a word
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.organizations", name]),
		"message": concat("", ["organisation ", json.marshal(name), " is ", json.marshal(organizations[name]), "; expected an object with its title, inherits and rules"]),
	}
}

errors_now contains err if {
	some name in chain
	inherits := object.get(organizations[name], "inherits", [])
	not is_array(inherits)
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.organizations", name, "inherits"]),
		"message": concat("", ["organisation ", json.marshal(name), " inherits ", json.marshal(inherits), "; expected a list of organisations"]),
	}
}

errors_now contains err if {
	some name in chain
	rules := object.get(organizations[name], "rules", {})
	not is_object(rules) # a list or null would hold no rule: the device allowed without a word
	err := {
		"code": "invalid_policy_data",
		"path": concat(".", ["pyagent.organizations", name, "rules"]),
		"message": concat("", ["organisation ", json.marshal(name), " lists its rules as ", json.marshal(rules), "; expected rules keyed by their id"]),
	}
}

errors_now contains err if {
	some parent in unknown_parents
	err := {
		"code": "unknown_parent_organization",
		"organization": parent,
		"message": concat("", ["organisation ", json.marshal(parent), " is inherited but not defined"]),
	}
}
