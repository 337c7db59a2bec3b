"""A realistic Android fleet for the server benchmark: devices of exactly N apps, as pyagent's own
``android-pm`` collector reports them (``pm list packages -f -i -U --show-versioncode``: id,
versionCode, source, installer, Android user and APK path), whose inventories mostly stay the same
from one run to the next.

Each device has a model (an OEM and its system image: the same ~110-130 system packages on every
device of that model), the GMS core, and user apps drawn from a catalogue of real package names and a
long tail of plausible ones (Zipf-like popularity); about a fifth have a TikTok-family app, as
``pyagent fleet generate`` has it. A work profile duplicates the work apps for Android user 10.

Inventory changes are exact, not random: on run ``r >= 1`` of device ``d`` the inventory changes
when ``(r + d) % change_every == 0`` (1 to 3 user apps updated: a new versionCode and a new install
path, as a Play Store update does); every other run reports the same inventory. Everything is seeded.
"""

from __future__ import annotations

import base64
import itertools
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from pyagent.fleet.generate import ORGANIZATIONS, TIKTOK_FAMILY, WORK_APPS

__all__ = ["AndroidDevice", "make_device"]


def _words(text: str) -> list[str]:
    return text.split()


AOSP = _words(
    """
com.android.settings com.android.systemui com.android.phone com.android.providers.telephony
com.android.providers.contacts com.android.providers.calendar com.android.providers.media
com.android.providers.downloads com.android.providers.settings com.android.providers.userdictionary
com.android.providers.blockednumber com.android.bluetooth com.android.nfc com.android.shell
com.android.keychain com.android.printspooler com.android.server.telecom com.android.location.fused
com.android.inputdevices com.android.externalstorage com.android.mtp com.android.vpndialogs
com.android.wallpaperbackup com.android.wallpapercropper com.android.dynsystem com.android.emergency
com.android.certinstaller com.android.carrierconfig com.android.companiondevicemanager
com.android.htmlviewer com.android.managedprovisioning com.android.musicfx com.android.ons
com.android.proxyhandler com.android.se com.android.sharedstoragebackup com.android.simappdialog
com.android.smspush com.android.statementservice com.android.stk com.android.storagemanager
com.android.traceur com.android.bips com.android.bookmarkprovider com.android.calllogbackup
com.android.cts.priv.ctsshim com.android.cts.ctsshim com.android.dreams.basic com.android.egg
com.android.localtransport com.android.backupconfirm com.android.credentialmanager
com.android.internal.display.cutout.emulation.corner
com.android.internal.display.cutout.emulation.double
com.android.internal.display.cutout.emulation.hole
com.android.internal.display.cutout.emulation.tall com.android.internal.systemui.navbar.gestural
com.android.internal.systemui.navbar.threebutton com.android.theme.icon.circle
com.android.theme.icon.squircle com.android.theme.icon.teardrop
com.android.theme.font.notoserifsource com.android.chrome com.android.vending
"""
)
GMS = _words(
    """
com.google.android.gms com.google.android.gsf com.google.android.ext.services
com.google.android.ext.shared com.google.android.networkstack.tethering
com.google.android.permissioncontroller com.google.android.packageinstaller
com.google.android.webview com.google.android.trichromelibrary com.google.android.inputmethod.latin
com.google.android.dialer com.google.android.contacts com.google.android.calendar
com.google.android.deskclock com.google.android.apps.messaging com.google.android.apps.photos
com.google.android.apps.maps com.google.android.youtube com.google.android.gm
com.google.android.googlequicksearchbox com.google.android.apps.docs
com.google.android.apps.wellbeing com.google.android.markup com.google.android.cellbroadcastreceiver
com.google.android.configupdater com.google.android.feedback com.google.android.partnersetup
com.google.android.setupwizard com.google.android.apps.restore com.google.android.as
com.google.android.tts com.google.android.documentsui com.google.android.captiveportallogin
com.google.android.modulemetadata com.google.android.apps.turbo
"""
)
#: OEM -> (package prefix, its own apps, weight in the fleet)
OEMS: dict[str, tuple[str, list[str], int]] = {
    "samsung": (
        "com.samsung.android",
        _words(
            """
com.sec.android.app.launcher com.sec.android.app.camera com.sec.android.app.myfiles
com.sec.android.app.clockpackage com.sec.android.app.sbrowser com.sec.android.app.popupcalculator
com.samsung.android.messaging com.samsung.android.dialer com.samsung.android.incallui
com.samsung.android.bixby.agent com.samsung.android.app.contacts com.samsung.android.calendar
com.samsung.android.game.gamehome com.samsung.android.knox.containercore
"""
        ),
        45,
    ),
    "pixel": (
        "com.google.android.apps.pixel",
        _words(
            """
com.google.android.apps.nexuslauncher com.google.android.GoogleCamera
com.google.android.apps.safetyhub com.google.android.apps.pixelmigrate com.google.android.apps.tips
"""
        ),
        25,
    ),
    "motorola": (
        "com.motorola",
        _words(
            """
com.motorola.launcher3 com.motorola.camera3 com.motorola.moto com.motorola.gamemode
com.motorola.help
"""
        ),
        15,
    ),
    "xiaomi": (
        "com.miui",
        _words(
            """
com.miui.home com.miui.securitycenter com.miui.gallery com.miui.notes com.xiaomi.market
com.miui.weather2 com.miui.calculator
"""
        ),
        15,
    ),
}
POPULAR = _words(
    """
com.whatsapp com.instagram.android com.facebook.katana com.facebook.orca com.spotify.music
com.netflix.mediaclient com.linkedin.android com.twitter.android us.zoom.videomeetings com.Slack
com.microsoft.office.officehubrow com.microsoft.skydrive com.azure.authenticator
org.thoughtcrime.securesms org.telegram.messenger com.booking com.airbnb.android com.ubercab
ee.mtakso.client com.revolut.revolut de.number26.android com.duolingo org.mozilla.firefox
de.dbnavigator com.shazam.android com.waze com.google.android.apps.translate
com.amazon.mShop.android.shopping com.paypal.android.p2pmobile
com.google.android.apps.authenticator2 com.deliveroo.orderapp com.trainline.trainline
com.ryanair.cheapflights com.easyjet.android com.vsct.vsc.mobile.horaireetresa.android
be.sncbnmbs.b2cmobapp nl.ns.android.activity it.trenitalia.app com.lufthansa.android.lufthansa
com.skype.raider com.adobe.reader com.dropbox.android com.evernote com.todoist
com.google.android.keep com.strava com.garmin.android.apps.connectmobile com.fitbit.FitbitMobile
com.nianticlabs.pokemongo com.king.candycrushsaga com.supercell.clashofclans com.bbc.news
com.lemonde.androidapp de.spiegel.android.app com.guardian eu.europa.ec.euronews
com.economist.lamarr com.ft.news org.wikipedia com.medium.reader
"""
)
TLDS = ("com", "com", "com", "de", "fr", "it", "es", "nl", "be", "eu", "io", "app")
BRAND_PARTS = _words(
    """
zen lum ora vix tal bri kor nex pla mon ari sol quo fen dra mil ver sto kai ran bel tor pix nov cel
tra qua mer lin vo
"""
)
PRODUCTS = _words(
    """
wallet scanner notes fitness weather recipes parking transit radio news banking photo editor
keyboard vpn reader podcasts tickets maps chat calendar tasks budget meditation sleep translate
learn fuel charging taxi delivery pharmacy insurance mail
"""
)
CATALOGUE_TAIL = 6000
SYSTEM_VERSION = "34"


def _b64(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(16)).decode()[:22]


def _camel(package: str) -> str:
    return "".join(part.capitalize() for part in package.split(".")[-2:])


def _tail(index: int) -> str:
    rng = random.Random(f"tail/{index}")
    brand = "".join(rng.sample(BRAND_PARTS, k=2))
    return f"{rng.choice(TLDS)}.{brand}.{rng.choice(PRODUCTS)}{'' if index < 3000 else index % 97}"


def _system_packages(oem: str) -> list[str]:
    """The system image of one OEM model: AOSP, GMS, the OEM's apps and its overlays."""
    prefix, own, _ = OEMS[oem]
    rng = random.Random(f"model/{oem}")
    overlays = [f"{prefix}.overlay.{rng.choice(PRODUCTS)}{i}" for i in range(rng.randint(10, 20))]
    return [*AOSP, *GMS, *own, *overlays]


_SYSTEM = {oem: _system_packages(oem) for oem in OEMS}
_CATALOGUE = [*POPULAR, *(_tail(i) for i in range(CATALOGUE_TAIL))]
_CUMULATIVE = list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(len(_CATALOGUE))))


def _system_app(package: str, rng: random.Random) -> dict[str, Any]:
    gms = package.startswith("com.google.") or package in ("com.android.chrome", "com.android.vending")
    where = ("/system/priv-app", "/system/app", "/product/priv-app", "/product/app")[
        zlib.crc32(package.encode()) % 4
    ]
    app: dict[str, Any] = {
        "id": package,
        "version": str(rng.randrange(10**8, 2 * 10**9)) if gms else SYSTEM_VERSION,
        "source": "android-pm",
    }
    if gms and rng.random() < 0.5:
        app["installer"] = "com.android.vending"
    app["user"] = 0
    app["path"] = f"{where}/{_camel(package)}/{_camel(package)}.apk"
    return app


def _user_app(package: str, rng: random.Random, user: int = 0) -> dict[str, Any]:
    return {
        "id": package,
        "version": str(rng.randrange(10_000, 2_100_000_000)),
        "source": "android-pm",
        "installer": "com.android.vending",
        "user": user,
        "path": f"/data/app/~~{_b64(rng)}==/{package}-{_b64(rng)}==/base.apk",
    }


@dataclass
class AndroidDevice:
    """One phone: its identity, its current inventory, and the runs at which that inventory changed."""

    index: int
    doc: dict[str, Any]
    apps: list[dict[str, Any]]
    seed: int
    change_every: int
    run: int = 0
    changes: int = 0
    updatable: list[int] = field(default_factory=list)

    def changes_at(self, run: int) -> bool:
        """Whether run ``run`` reports a changed inventory (never the first run)."""
        return run >= 1 and self.change_every > 0 and (run + self.index) % self.change_every == 0

    def advance(self, run: int) -> bool:
        """Move the inventory forward to run ``run`` (replaying every change on the way); True when
        run ``run`` itself changed it."""
        changed = False
        while self.run < run:
            self.run += 1
            changed = self.changes_at(self.run)
            if changed:
                self._update_apps(random.Random(f"{self.seed}/change/{self.index}/{self.run}"))
        return changed

    def _update_apps(self, rng: random.Random) -> None:
        self.changes += 1
        for position in rng.sample(self.updatable, k=min(len(self.updatable), rng.randint(1, 3))):
            old = self.apps[position]
            new = _user_app(str(old["id"]), rng, int(old["user"]))
            new["version"] = str(int(old["version"]) + rng.randint(1, 50_000))
            self.apps[position] = new

    def report(self, collected_at: str) -> dict[str, Any]:
        """The device report of the current inventory, as ``pyagent collect --source android-pm``
        writes it (the app list is shared, not copied: serialise it before the next change)."""
        return {
            "schema_version": 1,
            "collected_at": collected_at,
            "device": self.doc,
            "apps": self.apps,
            "collector": {"name": "android-pm", "version": "1"},
        }


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def make_device(index: int, *, apps: int, seed: int, change_every: int) -> AndroidDevice:
    """Device ``index`` of the fleet, with exactly ``apps`` apps (its first inventory)."""
    rng = random.Random(f"{seed}/device/{index}")
    oem = rng.choices(list(OEMS), weights=[w for _, _, w in OEMS.values()])[0]
    organization = _weighted(rng, ORGANIZATIONS)
    corporate = rng.random() < 0.45
    work_profile = not corporate and rng.random() < 0.15
    doc: dict[str, Any] = {
        "id": f"{organization}-android-{oem}-{index:06d}",
        "platform": "android",
        "os_version": rng.choice(("12", "13", "14", "14", "15")),
        "ownership": "corporate" if corporate else "personal",
        "organization": organization,
        "mdm": {"enrolled": corporate or rng.random() < 0.4, "provider": "Microsoft Intune"},
    }
    if work_profile:
        doc["work_profile"] = True
    doc["extra"] = {"input": "adb", "android_users_seen": [0, 10] if work_profile else [0]}
    system = [_system_app(p, rng) for p in _SYSTEM[oem]]
    wanted = max(0, apps - len(system))
    chosen: dict[str, int] = {}
    if rng.random() < 0.22:
        chosen[rng.choice(TIKTOK_FAMILY["android"])] = 0
    if corporate or work_profile or rng.random() < 0.5:
        for package in rng.sample(WORK_APPS["android"], k=rng.randint(2, len(WORK_APPS["android"]))):
            chosen[package] = 10 if work_profile else 0
    while len(chosen) < wanted:
        chosen.setdefault(rng.choices(_CATALOGUE, cum_weights=_CUMULATIVE)[0], 0)
    user_apps = [_user_app(p, rng, u) for p, u in list(chosen.items())[:wanted]]
    inventory = (system + user_apps)[: max(1, apps)]
    updatable = [i for i, a in enumerate(inventory) if str(a.get("path", "")).startswith("/data/app/")]
    return AndroidDevice(index, doc, inventory, seed, change_every, updatable=updatable)
