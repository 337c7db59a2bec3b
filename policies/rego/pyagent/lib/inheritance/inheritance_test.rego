# METADATA
# title: Inheritance tests
# description: Transitive inheritance, overrides, cycles and unknown parents.
package pyagent.lib.inheritance_test

import data.pyagent.decision
import data.pyagent.lib.inheritance
import data.pyagent.lib.testdata_test as testdata

tiktok := {"id": "com.zhiliaoapp.musically"}

device_of(org, ownership, enrolled) := {
	"at": "2023-03-16T09:30:00Z",
	"report": {
		"device": {
			"id": "d-1", "platform": "android", "ownership": ownership,
			"organization": org, "mdm": {"enrolled": enrolled},
		},
		"apps": [tiktok],
	},
}

rule(ban, scopes) := {"ban": ban, "scopes": scopes, "effective_from": "2023-03-15T00:00:00Z"}

# a inherits b inherits c; b overrides c's "base" rule with a narrower scope.
three_levels := {
	"a": {"inherits": ["b"], "rules": {}},
	"b": {"inherits": ["c"], "rules": {"base": rule("tiktok", ["corporate"])}},
	"c": {"inherits": [], "rules": {"base": rule("tiktok", ["all"]), "extra": rule("tiktok", ["personal-enrolled"])}},
}

test_eeas_chain_is_eeas_and_commission if {
	inheritance.chain == {"eeas", "eu-commission"}
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("eeas", "corporate", true)
}

# The rule keys an organisation's own data gives it: ORG/NAME for each rule it lists.
own_rule_keys(org) := {concat("/", [org, name]) | some name, _ in testdata.organizations[org].rules}

# (Computed from the shipped data, so that a rule an author adds to either organisation keeps them
# true; the rules the domain names are checked by name as well.)
test_eeas_rules_are_its_own_plus_the_commissions if {
	keys := object.keys(inheritance.rules)
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("eeas", "corporate", true)
	overridden := {concat("/", ["eu-commission", name]) | some name, _ in testdata.organizations.eeas.rules}
	keys == own_rule_keys("eeas") | (own_rule_keys("eu-commission") - overridden)
	{"eeas/tiktok-work-apps", "eu-commission/tiktok"} - keys == set()
}

test_commission_does_not_get_eeas_rules if {
	keys := object.keys(inheritance.rules)
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("eu-commission", "corporate", true)
	keys == own_rule_keys("eu-commission")
	"eu-commission/tiktok" in keys
}

test_transitive_inheritance_with_nearest_override if {
	keys := object.keys(inheritance.rules)
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("a", "personal", false)
		with data.pyagent.organizations as three_levels
	keys == {"b/base", "c/extra"}
}

test_override_narrows_the_inherited_scope if {
	# c's "base" rule (all) is overridden by b's (corporate): a personal device of a is allowed.
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("a", "personal", false)
		with data.pyagent.organizations as three_levels
	d.allow == true
	d.violations == []
}

test_override_keeps_applying_to_its_own_scope if {
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("a", "corporate", false)
		with data.pyagent.organizations as three_levels
	[[v.rule, v.scope] | some v in d.violations] == [["b/base", "corporate"]]
}

test_own_rule_overrides_inherited_rule_with_same_id if {
	orgs := object.union(testdata.organizations, {"eeas": {
		"inherits": ["eu-commission"],
		"rules": {"tiktok": object.union(rule("tiktok", ["corporate"]), {"enforcement": "warn"})},
	}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("eeas", "corporate", true) with data.pyagent.organizations as orgs
	d.allow == true
	[[w.rule, w.reason] | some w in d.warnings] == [["eeas/tiktok", "enforcement_warn"]]
}

test_diamond_inheritance_applies_both_unrelated_rules if {
	orgs := {
		"top": {"inherits": ["left", "right"], "rules": {}},
		"left": {"inherits": [], "rules": {"r": rule("tiktok", ["corporate"])}},
		"right": {"inherits": [], "rules": {"r": rule("tiktok", ["all"])}},
	}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("top", "corporate", false) with data.pyagent.organizations as orgs
	[[v.rule, v.scope] | some v in d.violations] == [["left/r", "corporate"], ["right/r", "all"]]
}

test_inheritance_cycle_is_an_error_not_a_hang if {
	orgs := {
		"x": {"inherits": ["y"], "rules": {"r": rule("tiktok", ["all"])}},
		"y": {"inherits": ["z"], "rules": {}},
		"z": {"inherits": ["x"], "rules": {}},
	}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("x", "corporate", true) with data.pyagent.organizations as orgs
	d.allow == false
	d.violations == []
	d.errors == [{"code": "inheritance_cycle", "message": "organisations inherit from each other in a cycle: x, y, z", "organizations": ["x", "y", "z"]}]
}

test_self_inheritance_is_a_cycle if {
	orgs := {"x": {"inherits": ["x"], "rules": {}}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("x", "corporate", true) with data.pyagent.organizations as orgs
	d.errors == [{"code": "inheritance_cycle", "message": "organisations inherit from each other in a cycle: x", "organizations": ["x"]}]
	d.allow == false
}

test_cycle_elsewhere_does_not_affect_other_organizations if {
	orgs := object.union(testdata.organizations, {
		"p": {"inherits": ["q"], "rules": {}},
		"q": {"inherits": ["p"], "rules": {}},
	})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("india", "personal", false) with data.pyagent.organizations as orgs
	d.errors == []
	[v.rule | some v in d.violations] == ["india/tiktok"]
}

test_unknown_parent_is_an_error if {
	orgs := {"x": {"inherits": ["ghost"], "rules": {}}}
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("x", "corporate", true) with data.pyagent.organizations as orgs
	d.errors == [{"code": "unknown_parent_organization", "message": "organisation \"ghost\" is inherited but not defined", "organization": "ghost"}]
	d.allow == false
}

test_new_organization_is_a_data_edit if {
	orgs := object.union(testdata.organizations, {"eu-parliament-2024": {
		"title": "European Parliament (2024 policy)",
		"inherits": ["eu-council"],
		"rules": {},
	}})
	phone := device_of("eu-parliament-2024", "personal", false)
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as object.union(phone, {"report": {"apps": array.concat(phone.report.apps, [{"id": "com.microsoft.teams"}])}})
		with data.pyagent.organizations as orgs
	[[v.rule, v.scope] | some v in d.violations] == [["eu-council/tiktok", "personal-with-work-apps"]]
}

test_inherits_given_as_one_string_is_a_data_error if {
	orgs := object.union(testdata.organizations, {"eeas": {"inherits": "eu-commission"}})
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("eeas", "corporate", true) with data.pyagent.organizations as orgs
	d.errors == [{
		"code": "invalid_policy_data",
		"path": "pyagent.organizations.eeas.inherits",
		"message": "organisation \"eeas\" inherits \"eu-commission\"; expected a list of organisations",
	}]
	d.allow == false
}

test_an_override_below_does_not_touch_the_ancestors_own_devices if {
	# b overrides c's "base" for b's and a's devices only: c's own personal device still breaks c's rule.
	d := decision
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device_of("c", "personal", false)
		with data.pyagent.organizations as three_levels
	[[v.rule, v.scope] | some v in d.violations] == [["c/base", "all"]]
}

test_rules_not_keyed_by_id_are_a_data_error if {
	# rules as null or a list would hold no rule: the TikTok phone allowed without a word
	every rules in [null, [rule("tiktok", ["all"])]] {
		orgs := object.union(testdata.organizations, {"eu-commission": {"title": "European Commission", "inherits": [], "rules": rules}})
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as device_of("eu-commission", "corporate", true) with data.pyagent.organizations as orgs
		d.allow == false
		d.errors == [{
			"code": "invalid_policy_data",
			"path": "pyagent.organizations.eu-commission.rules",
			"message": concat("", ["organisation \"eu-commission\" lists its rules as ", json.marshal(rules), "; expected rules keyed by their id"]),
		}]
	}
}

test_an_organisation_that_is_not_an_object_is_a_data_error if {
	# null, a string or a list holds no rule: the TikTok phone, and its inheriting EEAS, allowed without a word
	every org in [null, "eu-commission", []] {
		orgs := object.union(testdata.organizations, {"eu-commission": org})
		every device in [device_of("eu-commission", "corporate", true), device_of("eeas", "corporate", true)] {
			d := decision
				with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
				with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
				with input as device with data.pyagent.organizations as orgs
			d.allow == false
			d.errors == [{
				"code": "invalid_policy_data",
				"path": "pyagent.organizations.eu-commission",
				"message": concat("", ["organisation \"eu-commission\" is ", json.marshal(org), "; expected an object with its title, inherits and rules"]),
			}]
		}
	}
}

test_organisations_not_keyed_by_id_are_a_data_error if {
	every orgs in [null, ["eu-commission"]] {
		d := decision
			with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
			with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
			with input as device_of("eu-commission", "corporate", true) with data.pyagent.organizations as orgs
		d.allow == false
		d.errors == [
			{
				"code": "invalid_policy_data",
				"path": "pyagent.organizations",
				"message": concat("", ["the organisations are ", json.marshal(orgs), "; expected organisations keyed by their id"]),
			},
			{
				"code": "unknown_organization",
				"organization": "eu-commission",
				"message": "unknown organisation \"eu-commission\"; known: ",
			},
		]
	}
}
