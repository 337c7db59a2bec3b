# METADATA
# title: Breach message tests
# description: Labels, reasons, notes and remediations, as a breach tells them.
package pyagent.lib.messages_test

import data.pyagent.lib.messages
import data.pyagent.lib.testdata_test as testdata

tiktok := {"id": "com.zhiliaoapp.musically", "name": "TikTok"}

unnamed := {"id": "com.zhiliaoapp.musically"}

rule := {"ban": "tiktok", "scopes": ["all"], "effective_from": "2023-03-15T00:00:00Z"}

# an organisation the shipped index does not resolve: its message is written now
device(org, app) := {"at": "2023-03-16T09:30:00Z", "report": {
	"device": {"id": "d-1", "platform": "android", "ownership": "corporate", "organization": org, "mdm": {"enrolled": true}},
	"apps": [app],
}}

unindexed := object.union(testdata.organizations, {"test-org": {"title": "Test Agency", "inherits": [], "rules": {"ban": rule}}})

test_a_named_app_is_labelled_by_its_name if {
	messages.label(rule, tiktok) == "TikTok (com.zhiliaoapp.musically)"
}

test_an_unnamed_app_is_labelled_by_its_ban_s_title if {
	messages.label(rule, unnamed) == "TikTok (com.zhiliaoapp.musically)" with data.pyagent.bans as testdata.bans
	messages.label({"ban": "no-such-ban"}, unnamed) == "no-such-ban (com.zhiliaoapp.musically)"
		with data.pyagent.bans as testdata.bans
}

test_the_message_says_scope_organisation_date_and_reason if {
	text := messages.message("test-org/ban", rule, "all", tiktok)
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("test-org", tiktok)
		with data.pyagent.organizations as unindexed
	text == concat("", [
		"TikTok (com.zhiliaoapp.musically) is banned on all devices of Test Agency from 2023-03-15T00:00:00Z: ",
		"cybersecurity: protection against threats that could be exploited against the organisation's corporate environment",
	])
}

test_a_rule_s_own_reason_wins_over_its_ban_s if {
	messages.reason(object.union(rule, {"reason": "our own"})) == "our own"
	messages.reason(rule) == "cybersecurity: protection against threats that could be exploited against the organisation's corporate environment"
		with data.pyagent.bans as testdata.bans
	messages.reason({"ban": "no-such-ban"}) == "policy" with data.pyagent.bans as testdata.bans
}

test_a_display_name_match_is_said_to_be_weaker_evidence if {
	messages.evidence_note(object.union(tiktok, {"evidence": "display_name"})) == " (matched from a display name, not a package ID: weaker evidence)"
	messages.evidence_note(tiktok) == ""
}

test_the_remediation_is_the_rule_s_own_else_to_uninstall if {
	messages.remediation(object.union(rule, {"remediation": "Remove it."}), tiktok) == "Remove it."
	messages.remediation(rule, tiktok) == "Uninstall TikTok (com.zhiliaoapp.musically) from this device."
}

test_an_organisation_without_a_title_is_named_by_its_id if {
	orgs := object.union(testdata.organizations, {"untitled": {"inherits": [], "rules": {}}})
	messages.org_title == "untitled"
		with data.pyagent.bans as testdata.bans with data.pyagent.organizations as testdata.organizations
		with data.pyagent.work_apps as testdata.work_apps with data.pyagent.exemptions as testdata.exemptions
		with input as device("untitled", tiktok) with data.pyagent.organizations as orgs
}
