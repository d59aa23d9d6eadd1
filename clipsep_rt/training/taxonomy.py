"""Sound classes of the offline corpus v3: rules mapping Debian package files to text labels.

Packages are extracted one per folder (``<packages_root>/<package>/usr/...``). Each file is
named by a *key*: ``<package>/<path inside the package>``, or for members of an archive
(zip, .pk3, .wz) ``<package>/<archive path>!<member>``. Rules are tried in order; the first
one that matches gives the file's class, unmatched files are unused. A rule matches when the
package is one of its ``packages`` (empty: any package not in ``SPEECH_PACKAGES``) and its
``pattern`` is found (``re.search``, case-insensitive) in the key's *name part*: the key
lower-cased, from the package's data folder on (see `name_part`). ``w(...)`` builds a word
pattern: the word not preceded by a letter, so "bark" does not match "disembark".

The tables live in `taxonomy_rules` (sound-effect keyword rules, categories),
`taxonomy_speech` (voices) and `taxonomy_instruments` (instruments, drums, soundfonts); this
module applies them (`classify_any`) and holds the per-package rules.

Labels are "|"-separated paraphrases, the first canonical. Speech is labelled by voice
(`VOICES`: package, folder, gender, language, speaker), music by folder, General-MIDI
instruments and drum kits are rendered from soundfonts (`INSTRUMENTS`, `DRUMS`,
`SOUNDFONTS`) and synthetic speech from festival / flite voices (`TTS_VOICES`).
"""

from __future__ import annotations

import re

from clipsep_rt.training.taxonomy_instruments import DRUM_PACKAGES, DRUMS, INSTRUMENT_SAMPLE_PACKAGES, INSTRUMENTS
from clipsep_rt.training.taxonomy_rules import CATEGORY_RANGES, MUSIC, RULES, Rule
from clipsep_rt.training.taxonomy_speech import SPEECH_LABEL, SPEECH_PACKAGES, VOICES

__all__ = [
    "ARCHIVE_SUFFIXES", "AUDIO_SUFFIXES", "MUSIC_FILE", "MUSIC_FOLDER", "MUSIC_PACKAGES", "PACKAGE_RULES", "UNUSED_PACKAGES",
    "all_class_labels", "category", "classify", "classify_any", "name_part",
]

AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3", ".opus", ".oga", ".wv")  # .wv: WavPack (decoded by PyAV)
ARCHIVE_SUFFIXES = (".zip", ".pk3", ".wz", ".orgue")  # .orgue: a GrandOrgue organ package (zip)
MUSIC_PACKAGES = ("nexuiz-music", "asterisk-moh-opsound-wav")
MUSIC_FOLDER = r"(?:^|/)(?:music|tunes|musics)/"
MUSIC_FILE = r"(?:music|theme|anthem|overture|mainzik|introzik)[^/]*$"


def name_part(key: str) -> str:
    """The part of a key rules look at: lower-cased, without the package name and the
    ``usr/share/(games/)<folder>/`` prefix (archive members keep their inner path)."""
    key = key.lower()
    if "!" in key:
        return key.rsplit("!", 1)[1]
    key = key.split("/", 1)[1] if "/" in key else key
    return re.sub(r"^usr/(?:share|lib)/(?:games/)?[^/]+/", "", key)


# Packages inspected and not used, with the reason (recorded in the manifest).
UNUSED_PACKAGES = {
    "freepats": "GUS .pat patches only (no .sf2, .sf3 or .wav in the package); no allowed renderer reads them (fluidsynth needs SoundFonts)",
    "festvox-ru": "its files are the voice's unit database; used only through festival synthesis",
    "klettres-data": "single letters and syllables (< 1 s each) read by unnamed speakers: too short and speaker unknown",
    "ktuberling-data": "single words by unnamed speakers of unknown gender",
    "libfluidsynth3": "renderer only (no sounds)",
    "fluidsynth": "renderer only (no sounds)",
    "codec2-examples": "codec test clips: seconds of speech and codec-processed copies of the same lines, plus over-the-air radio recordings of uncertain content",
    "crrcsim-data": "engine loops of radio-controlled model aircraft (pitched by the simulator): no class fits",
    "freedoom": "its sounds are lumps inside the .wad files (Doom format), which the builder does not read",
    "gcin-voice": "single Mandarin syllables (< 1 s each) of an unnamed speaker: too short and speaker unknown",
    "xblast-tnt-sounds": "headerless .raw PCM (rate and sample format unrecorded)",
}

# Package-specific labels of the packages added in v3, from their file lists (names, folders,
# a few durations): (package, regex searched in the name part, class or None), first match
# wins, tried before the music folders and the keyword rules. None leaves the file unlabelled:
# spoken lines of unknown speakers, synthesised or cartoon effects the keyword rules misread
# ("fire" said by a character, a pinball flipper as a jump, a floppy drive's head "step").
# A trailing (package, "", None) keeps the package to the lines above it.
PACKAGE_RULES: tuple[tuple[str, str, str | None], ...] = (
    ("adonthell-data", r"audio/at-demo-[0-9]+\.ogg$", "music"),  # the game's soundtrack (14-92 s stereo)
    # berusky2 names its sounds in Czech
    ("berusky2-data", r"/ptak[0-9]*\.wav$", "birds"),
    ("berusky2-data", r"/racek[0-9]*\.wav$", "seagull"),
    ("berusky2-data", r"/vitr[0-9]*\.wav$", "wind"),
    ("berusky2-data", r"/(?:hrom|blesk)[0-9]*\.wav$", "thunder"),
    ("berusky2-data", r"/kap[0-9]*\.wav$", "water_drip"),
    ("berusky2-data", r"/exploze[0-9]*\.wav$", "explosion"),
    ("berusky2-data", r"/zblunk[0-9]*\.wav$", "splash"),
    ("berusky2-data", r"/parnik[0-9]*\.wav$", "boat"),
    ("berusky2-data", r"/dvere(?:otevrit|zavrit)[0-9]*\.wav$", "door"),
    ("berusky2-data", r"/steps(?:and|steel|now|grass|stone|wood)[0-9]*\.wav$", "footsteps"),
    ("berusky2-data", r"/les[0-9]*\.wav$", "forest_ambience"),
    ("berusky2-data", r"/zvon[0-9]*\.wav$", "bell"),
    ("berusky2-data", r"/tlacitko[0-9]*\.wav$", "click"),
    ("berusky2-data", r"/krysa[0-9]*\.wav$", "rabbit"),  # a rat squeaking
    ("berusky2-data", r"/push ", None),  # pushing boxes, not knocking
    # Bos Wars: building and unit lines are spoken ("power plant under attack"); only soldiers die audibly
    ("boswars-data", r"units/(?:medic|grenadier|engineer|bazoo|assault)/[a-z]+_die\.wav$", "death_cry"),
    ("boswars-data", r"", None),
    ("bucklespring-data", r"(?:^|/)wav/[0-9a-f]+-[01]\.wav$", "keyboard_typing"),  # key press/release one-shots, grouped
    ("bzflag-data", r"(?:^|/)(?:fire|shock)\.wav$", None),  # a tank firing, a shock wave
    ("caveexpress-data", r"npc-|water-|crate-hit|stone-hit|fruit-spawn|cave[0-9]|tile-waterfall", None),
    ("crossfire-client", r"bugle_charge", "horn_signal"),
    ("crossfire-client", r"fire-spell", None),
    ("endless-sky-data", r"ambient/machinery", "machine"),
    ("endless-sky-data", r"ion rain|jump (?:in|out|drive)|afterburner|impact|rocket hit|crunch|fire-lance|javelin|fail", None),
    ("exadrums", r"ride(?:bell|edge)\.wav$", "cymbal"),
    ("extremetuxracer-data", r"tree_hit", None),
    ("foobillardplus-data", r"smack", None),
    ("freeciv-data", r"stdmusic/", "music"),
    ("freeciv-data", r"/(?:lrgcan|medcan)\.ogg$", "cannon"),
    ("freeciv-data", r"/(?:lrgexpl|smlexpl)\.ogg$", "explosion"),
    ("freeciv-data", r"/(?:mgbar[0-9]|mgheavy)\.ogg$", "gunshot"),
    ("freeciv-data", r"/foot[0-9]\.ogg$", "footsteps"),
    ("freecol", r"sound/anthem/", "music"),  # national anthems
    ("freedink-data", r"/fire\.wav$", None),
    ("granatier", r"crunch|/die\.wav$", None),
    ("heroes-sound-effects", r"/claxon\.wav$", "car_horn"),
    ("heroes-sound-effects", r"/explo[0-9]+\.wav$", "explosion"),
    ("knavalbattle", r"shoot-water", "splash"),
    ("knavalbattle", r"ship-player[12]-shoot", "cannon"),
    ("kolf", r"/hit\.wav$", None),  # a golf club
    ("lomiri-sounds", r"camera/click/camera_click", "camera_shutter"),
    ("lomiri-sounds", r"", None),  # ringtones and notification jingles ("glass marimba", "wind chime")
    ("mame-data", r"samples/floppy/", None),  # floppy drive mechanics ("step" is the head)
    ("marsshooter-data", r"announcer/|toon/pump", None),
    ("mazeofgalious-data", r"", None),  # chip-style effects of an MSX remake
    ("netpanzer-data", r"/[a-z]{2}-fire\.wav$|battle_shell", "cannon"),
    ("netpanzer-data", r"battle_mg", "gunshot"),
    ("netpanzer-data", r"/expl_[0-9]+\.wav$", "explosion"),
    ("netpanzer-data", r"/(?:tankidle|hevidle|hevmov|hevstart)\.wav$", "truck"),
    ("netpanzer-data", r"/hit_[0-9]+\.wav$", None),
    ("neverball-common", r"(?:^|/)bgm/", "music"),
    ("neverball-common", r"snd/(?:eagle|birdie|bogey|double|albatross|par|hole)|snd/gd/", None),  # spoken golf scores, announcer
    ("openarena-088-data", r"invul_impact", None),
    ("pekka-kana-2-data", r"sfx/pump", None),
    ("pinball-data", r"/(?:flip|shoot)\.wav$", None),
    ("seahorse-adventures", r"sfx/hit\.wav$", None),
    ("solarwolf", r"audio/shoot", None),
    ("sound-theme-freedesktop", r"/bell\.oga$", "bell"),
    ("sound-theme-freedesktop", r"camera-shutter", "camera_shutter"),
    ("sound-theme-freedesktop", r"alarm-clock-elapsed", "alarm"),
    ("sound-theme-freedesktop", r"", None),  # desktop chimes, spoken channel names
    ("teeworlds-data", r"foley_foot_", "footsteps"),
    ("teeworlds-data", r"wp_(?:gun|shotty)_fire", "gunshot"),
    ("teeworlds-data", r"wp_laser_fire", "laser"),
    ("teeworlds-data", r"wp_flump_explo", "explosion"),
    ("teeworlds-data", r"vo_teefault_", "cartoon_voice"),
    ("teeworlds-data", r"sfx_pickup_", "pickup"),
    ("teeworlds-data", r"music_", "music"),
    ("teeworlds-data", r"", None),
    ("trackballs-data", r"(?:crazy|evil)laugh", "laughter"),
    ("trackballs-data", r"sfx/(?:[a-z_]*death|die|ball_sinks[0-9]*|crash|sandcrash)\.wav$", None),  # a ball's fate, not a person's
    ("tuxfootball", r"refwhistle", "whistle"),
    ("tuxfootball", r"crowdcheer", "cheering"),
    ("tuxfootball", r"sound/kick\.wav$", None),
    ("unknown-horizons", r"sounds/lumberjack", "chopping_wood"),
    ("unknown-horizons", r"audio/voice/", None),
    ("warmux-data", r"voices/theme[0-9]+\.ogg$", None),  # 2-5 s team jingles or lines: unclear
    ("warmux-data", r"sound/default/voices/", "cartoon_voice"),  # the characters' voices ("fire!", "theme1" lines), like Hedgewars'
    ("warmux-data", r"anvil_(?:fall|collision)|aircraft_bomb_falling", None),
    ("wordwarvi-sound", r"synthetic_|nice_bank_shot|ground_smack|flak_hit|timpani_boing", None),
    ("workrave-data", r"exercise-step", None),
)


def classify(key: str) -> Rule | None:
    """The class rule for a sound-effect or music file key (``<package>/<path>[!member]``),
    else None. Speech, sampled instruments and drums are classified by `classify_any`."""
    hit = classify_any(key)
    return hit[0] if hit is not None else None


def _rule(name: str, label: str, group: bool = False) -> Rule:
    return Rule(name, label, "", group_short=group)


def _class_rule(name: str, group: bool = False) -> Rule:
    """The rule of a class by name (a keyword rule's own, for its group_short)."""
    for rule in (MUSIC, *RULES):
        if rule.name == name:
            return Rule(rule.name, rule.label, "", group_short=rule.group_short or group)
    if name in {d.name for d in DRUMS} | {i.name for i in INSTRUMENTS}:
        return _rule(name, all_class_labels()[name], True)
    return _rule(name, all_class_labels()[name], group)


def classify_any(key: str) -> tuple[Rule, dict] | None:
    """(class rule, extra metadata) for any file key, or None when the file is unused.

    Order: speech packages by voice; music (music packages, music folders and file names);
    drum one-shots of drum packages; sampled instruments; then the sound-effect `RULES`."""
    if not key.lower().endswith(AUDIO_SUFFIXES):
        return None
    package = key.split("/", 1)[0]
    name = name_part(key)
    if package in SPEECH_PACKAGES:
        for voice in VOICES:
            if voice.package == package and re.search(voice.folder, name):
                cls, label = SPEECH_LABEL[voice.gender]
                return _rule(cls, label), {"voice": voice.speaker, "language": voice.language, "gender": voice.gender}
        return None
    if package == "0ad-data" and "/voice/" in "/" + name:
        civ = re.search(r"voice/([^/]+)/", name)
        language = civ.group(1) if civ else "unknown"
        if "civ_dog_" in name:
            return _rule("dog", next(r.label for r in RULES if r.name == "dog")), {}
        for gender in ("female", "male"):
            if f"civ_{gender}_" in name:
                cls, label = SPEECH_LABEL[gender]
                return _rule(cls, label), {"voice": f"0ad-{language}-{gender}", "language": language, "gender": gender}
        return None
    if package == "hedgewars-data" and "sounds/voices/" in name:
        return _rule("cartoon_voice", "a cartoon voice shouting|a funny voice exclaims|a silly character yelling"), {}
    for owner, pattern, cls in PACKAGE_RULES:
        if owner == package and re.search(pattern, name):
            return (_class_rule(cls, group=package == "bucklespring-data"), {}) if cls else None
    if package in MUSIC_PACKAGES or re.search(MUSIC_FOLDER, name) or re.search(MUSIC_FILE, name):
        return MUSIC, {}
    base = name.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    if package in DRUM_PACKAGES and (package != "qabcs-data" or "noises/" in name):
        if (package.startswith("hydrogen") or "drums/" in name or "sounds/q009/" in name
                or package in ("qabcs-data", "chuck-data", "exadrums")):
            for drum in DRUMS:
                if re.search(drum.samples, base, re.IGNORECASE):
                    return _rule(drum.name, drum.label, True), {}
    if package == "grandorgue-demo":  # the demo organ's pipe samples (Bourdon, Montre, Trompette ... stops)
        church = next(i for i in INSTRUMENTS if i.name == "church_organ")
        return _rule(church.name, church.label, True), {}
    if package in INSTRUMENT_SAMPLE_PACKAGES:
        for inst in INSTRUMENTS:
            if inst.samples and re.search(inst.samples, name, re.IGNORECASE):
                return _rule(inst.name, inst.label, True), {}
    if package == "qabcs-data" and "noises/" not in name:
        return None  # spoken letters and words of unnamed speakers
    if package.startswith("hydrogen"):
        return None  # unnamed kit pieces (e.g. "Tamb", "Rim") are not worth a guess
    if package == "megaglest-data" and re.search(r"_(?:ack|select)[0-9]*\.[a-z0-9]+$|/magician/sounds/", name):
        return None  # units' spoken acknowledgements ("yes, sir"), not the sound the unit is named after
    if package == "warzone2100-data" and re.search(r"(?:^|/)pcv[0-9]+\.", name):
        return None  # spoken computer messages
    short = "/".join(name.split("/")[-2:])  # parent folder + file name
    for rule in RULES:
        if rule.matches(package, short):
            return rule, {}
    return None


def category(name: str) -> str:
    """The category a class belongs to (for the manifest's per-category hours)."""
    if name in {i.name for i in INSTRUMENTS}:
        return "instruments"
    if name in {d.name for d in DRUMS}:
        return "drums"
    if name in ("man_speaking", "woman_speaking", "cartoon_voice"):
        return "speech"
    if name == MUSIC.name:
        return "music"
    current = "other"
    starts = dict(CATEGORY_RANGES)
    for rule in RULES:
        current = starts.get(rule.name, current)
        if rule.name == name:
            return current
    return "other"


def all_class_labels() -> dict[str, str]:
    """Every class the taxonomy can produce -> its label."""
    out = {r.name: r.label for r in RULES}
    out.update({i.name: i.label for i in INSTRUMENTS})
    out.update({d.name: d.label for d in DRUMS})
    out.update({n: l for n, l in SPEECH_LABEL.values()})
    out[MUSIC.name] = MUSIC.label
    out["cartoon_voice"] = "a cartoon voice shouting|a funny voice exclaims|a silly character yelling"
    return out
