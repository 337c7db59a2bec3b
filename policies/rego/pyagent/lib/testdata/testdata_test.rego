# METADATA
# title: Library test data
# description: |
#   A frozen copy of the shipped bans, organisations and work apps, and no exemptions. Every library
#   test decides with this copy (`with data.pyagent.bans as testdata.bans`, ..., before the test's
#   own `with`s: the last one wins), so an author's edit of policies/data (a rule set to warn, a ban
#   added, an organisation removed) changes none of them; the shipped-data tests, pyagent/decision,
#   assert what the shipped organisations decide, and are the ones such an edit may change.
package pyagent.lib.testdata_test

# METADATA
# title: Bans
bans := {
	"capcut": {
		"apps": {
			"android": [
				"com.lemon.lvoverseas",
			],
			"windows": [
				"ByteDance.CapCut",
			],
		},
		"reason": "cybersecurity: ByteDance video editor under review",
		"title": "CapCut",
	},
	"lemon8": {
		"apps": {
			"android": [
				"com.bd.nproject",
			],
		},
		"reason": "cybersecurity: ByteDance social app under review",
		"title": "Lemon8",
	},
	"tiktok": {
		"apps": {
			"android": [
				"com.zhiliaoapp.musically",
				"com.ss.android.ugc.trill",
				"com.zhiliaoapp.musically.go",
				"com.ss.android.ugc.aweme",
			],
			"ios": [
				"com.zhiliaoapp.musically",
				"com.ss.iphone.ugc.Aweme",
				"835599320",
				"id835599320",
			],
			"windows": [
				"BytedancePte.Ltd.TikTok_6yccndn6064se",
				"9NH2GPH4JZS4",
			],
		},
		"reason": "cybersecurity: protection against threats that could be exploited against the organisation's corporate environment",
		"title": "TikTok",
	},
}

# METADATA
# title: Organisations
organizations := {
	"eeas": {
		"inherits": [
			"eu-commission",
		],
		"rules": {
			"tiktok-work-apps": {
				"ban": "tiktok",
				"effective_from": "2023-03-15T00:00:00Z",
				"enforcement": "deny",
				"remediation": "Uninstall the app from work phones and from private phones that have work-related apps.",
				"scopes": [
					"personal-with-work-apps",
				],
			},
		},
		"title": "European External Action Service",
	},
	"eu-commission": {
		"inherits": [],
		"rules": {
			"tiktok": {
				"ban": "tiktok",
				"effective_from": "2023-03-15T00:00:00Z",
				"enforcement": "deny",
				"remediation": "Uninstall the app from this device. Corporate devices and personal devices enrolled in the Commission's mobile device service must not run it (Commission decision of 23 February 2023).",
				"scopes": [
					"corporate",
					"personal-enrolled",
				],
			},
		},
		"title": "European Commission",
	},
	"eu-council": {
		"inherits": [],
		"rules": {
			"tiktok": {
				"ban": "tiktok",
				"effective_from": "2023-03-15T00:00:00Z",
				"enforcement": "deny",
				"remediation": "Uninstall the app from official devices, and from personal phones that have access to Council services through work apps.",
				"scopes": [
					"corporate",
					"personal-with-work-apps",
				],
			},
		},
		"title": "Council of the European Union",
	},
	"eu-parliament": {
		"inherits": [],
		"rules": {},
		"title": "European Parliament",
	},
	"india": {
		"inherits": [],
		"rules": {
			"tiktok": {
				"ban": "tiktok",
				"effective_from": "2020-06-29T00:00:00Z",
				"enforcement": "deny",
				"reason": "national security: TikTok is blocked in India since 2020",
				"remediation": "The app is banned in India on every device; uninstall it.",
				"scopes": [
					"all",
				],
			},
		},
		"title": "Government of India",
	},
	"us-federal": {
		"inherits": [],
		"rules": {
			"tiktok": {
				"ban": "tiktok",
				"effective_from": "2022-12-29T00:00:00Z",
				"enforcement": "deny",
				"reason": "security of government devices: federal employees may not use TikTok on government-owned devices",
				"remediation": "Remove the app from this government-owned device.",
				"scopes": [
					"corporate",
				],
			},
		},
		"title": "United States federal government",
	},
}

# METADATA
# title: Work apps
work_apps := {
	"android": [
		"com.microsoft.office.outlook",
		"com.microsoft.teams",
		"com.cisco.webex.meetings",
		"com.microsoft.windowsintune.companyportal",
	],
	"ios": [
		"com.microsoft.Office.Outlook",
		"com.microsoft.skype.teams",
	],
}

# METADATA
# title: Exemptions, none (each test gives its own)
exemptions := {}
