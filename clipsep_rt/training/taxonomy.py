"""Sound classes of the offline corpus: rules mapping Debian package files to text labels.

Each file is named by a *key*: its path relative to the packages root (``usr/share/...``),
or for members of a zip archive ``<zip path>!<member>``. The first rule whose pattern
matches (``re.search``, case-insensitive) gives the file's class; unmatched files are unused.
Labels are "|"-separated paraphrases, the first one canonical. General-MIDI instrument
classes are rendered from a soundfont (see ``INSTRUMENTS``), not matched from files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ZAD_ZIP = "usr/share/games/0ad/mods/public/public.zip"
WESNOTH = "usr/share/games/wesnoth/1.16/data/core/sounds"
HEDGEWARS = "usr/share/games/hedgewars/Data/Sounds/voices"
ASTERISK = "usr/share/asterisk/sounds"
HYDROGEN = "usr/share/hydrogen/data/drumkits"
SOUNDFONT = "usr/share/sounds/sf2/FluidR3_GM.sf2"

PACKAGES = {
    "0ad-data": ZAD_ZIP,
    "wesnoth-1.16-data": WESNOTH,
    "hedgewars-data": HEDGEWARS,
    "asterisk-core-sounds-en-wav": ASTERISK,
    "hydrogen-drumkits": HYDROGEN,
    "fluid-soundfont-gm": SOUNDFONT,
}
AUDIO_SUFFIXES = (".wav", ".ogg", ".flac")

Z = re.escape(ZAD_ZIP) + "!audio/"
W = re.escape(WESNOTH) + "/"
H = re.escape(HYDROGEN) + "/[^/]+/"


@dataclass(frozen=True)
class Rule:
    name: str  # class folder name
    label: str  # "|"-separated paraphrases, first canonical
    pattern: str  # regex searched in the file key
    group_short: bool = False  # concatenate short one-shots (from one folder) into >= 1 s clips

    def matches(self, key: str) -> bool:
        return re.search(self.pattern, key, re.IGNORECASE) is not None


RULES: tuple[Rule, ...] = (
    # animals
    Rule("cow", "cow mooing|a cow moos|cattle lowing", Z + r"actor/fauna/animal/cattle"),
    Rule("chicken", "chicken clucking|a hen clucks|chickens cackling", Z + r"actor/fauna/animal/chicken"),
    Rule("horse_hooves", "horse hooves galloping|a horse trotting|hoofbeats",
         Z + r"actor/mounted/movement/mstep|" + W + r"horse(-elf)?-canter", group_short=True),
    Rule("horse", "horse neighing|a horse whinnies|a horse snorting",
         Z + r"actor/fauna/(animal/horse|death/death_horse)|" + Z + r"actor/mounted/death/death_horse|" + W + r"horse-(hit|die)"),
    Rule("elephant", "elephant trumpeting|an elephant trumpets|an elephant calling", Z + r"actor/fauna/animal/elephant_"),
    Rule("pig", "pig oinking|a pig squeals|pigs grunting", Z + r"actor/fauna/animal/pig"),
    Rule("goat", "goat bleating|a goat bleats|goats bleating", Z + r"actor/fauna/death/goat"),
    Rule("sheep", "sheep bleating|a sheep baas|sheep baaing", Z + r"actor/fauna/animal/sheep"),
    Rule("lion", "lion roaring|a lion roars|a big cat growling", Z + r"actor/fauna/animal/lion_"),
    Rule("camel", "camel grunting|a camel groans|a camel calling", Z + r"actor/fauna/(animal|death|movement)/(death_)?camel"),
    Rule("wolf", "wolf growling|a wolf snarls|a wolf howling in pain", W + r"wolf-"),
    Rule("dog", "dog barking|a dog barks|a barking dog", Z + r"voice/global/civ_dog_"),
    Rule("birds", "birds chirping|birdsong|birds singing",
         W + r"ambient/birds|" + Z + r"actor/fauna/animal/(peacock|flamingo)"),
    Rule("bat", "bat wings flapping|a bat flaps its wings|flapping wings", W + r"bat-"),
    # people
    Rule("footsteps", "footsteps|someone walking|footsteps on the ground",
         Z + r"actor/human/movement/|" + Z + r"actor/singlesteps/", group_short=True),
    Rule("man_speaking", "a man speaking|a male voice talking|a man says something", Z + r"voice/.*/civ_male_"),
    Rule("woman_speaking", "a woman speaking|a female voice talking|a woman says something",
         Z + r"voice/.*/civ_female_|" + re.escape(ASTERISK) + r"/[^/]*_f_"),
    Rule("person_screaming", "a person screaming in pain|a man groaning|someone crying out",
         Z + r"actor/human/death/|" + W + r"human(-female|-old)?-(die|hit)"),
    Rule("cartoon_voice", "a cartoon voice shouting|a funny voice exclaims|a silly character yelling", re.escape(HEDGEWARS) + r"/"),
    Rule("crowd", "crowd at a busy market|people chattering in a town|busy town ambience",
         Z + r"ambient/building/amb_(trade|port)"),
    # nature
    Rule("river", "river flowing|a stream of running water|a waterfall", Z + r"ambient/water/(river|waterfall)"),
    Rule("sea_waves", "sea waves crashing|waves on the shore|ocean surf", Z + r"ambient/water/wave"),
    Rule("rain", "rain falling|rainfall|a rain shower", Z + r"ambient/weather/rain"),
    Rule("thunder", "thunder rumbling|a thunderclap|lightning and thunder",
         Z + r"ambient/weather/thunder|" + W + r"lightning\."),
    Rule("wind", "wind blowing|a howling wind|a gust of wind", Z + r"ambient/weather/(wind|snowstorm)"),
    Rule("countryside", "countryside ambience|insects and birds in the countryside|a farm in the daytime",
         Z + r"ambient/(dayscape/|building/amb_farm)"),
    Rule("fire", "fire crackling|a burning fire|flames roaring", W + r"(fire|ambient/campfire|flame-big|torch)\."),
    # tools and work
    Rule("hammering", "hammering|someone hammering wood|a hammer striking", Z + r"resource/construction/con_(wood|stone)"),
    Rule("sawing", "sawing wood|a hand saw cutting|someone sawing", Z + r"resource/construction/con_saw"),
    Rule("chopping_wood", "chopping wood with an axe|an axe chopping a tree|woodcutting", Z + r"resource/lumbering/"),
    Rule("mining", "a pickaxe striking rock|mining stone|chipping at rock", Z + r"resource/mining/"),
    Rule("digging", "digging soil with a hoe|a hoe in the earth|farming the field",
         Z + r"resource/(farming|gathering/gather_field)"),
    # weapons and destruction
    Rule("sword_clash", "swords clashing|a sword fight|metal blades striking",
         Z + r"attack/weapon/(swordhit|sword_attack)|" + W + r"sword\."),
    Rule("arrow", "an arrow being shot|a bow firing arrows|arrows whooshing",
         Z + r"attack/(weapon/(arrowfly|bow_attack)|impact/arrow)|" + W + r"(bow|crossbow)"),
    Rule("shield_hit", "a weapon hitting a shield|a blow on a shield|shield struck", Z + r"attack/impact/shield_"),
    Rule("gunshot", "a gunshot|a musket firing|a gun being fired", Z + r"attack/weapon/musket|" + W + r"(gunshot|thunderstick)"),
    Rule("explosion", "an explosion|a building collapsing|debris falling",
         Z + r"attack/destruction/|" + W + r"(explosion|cave-in)"),
    Rule("siege_engine", "a siege engine firing|a catapult launching|a battering ram", Z + r"attack/siege/"),
    Rule("horn_signal", "a horn blowing|a war horn sounding|a hunting horn call", W + r"horn-signals/"),
    # monsters (game creatures)
    Rule("monster_growl", "a monster growling|a troll roaring|an ogre grunting", W + r"(troll|ogre|orc|yeti)-"),
    # drums (hydrogen kits, by sample name)
    Rule("kick_drum", "a kick drum|a bass drum beat|a thumping kick drum", H + r"[^/]*(kick|bassdrum|bass_drum|bd)[^/]*$", group_short=True),
    Rule("snare_drum", "a snare drum|a snare hit|a snare drum roll", H + r"[^/]*snare[^/]*$", group_short=True),
    Rule("hi_hat", "a hi-hat|hi-hat cymbal ticking|a closed hi-hat", H + r"[^/]*(hihat|hi-hat|hhat|hat)[^/]*$", group_short=True),
    Rule("cymbal", "a cymbal crash|a ride cymbal|a crashing cymbal", H + r"[^/]*(crash|ride|cymbal|china|splash)[^/]*$", group_short=True),
    Rule("tom_drum", "a tom drum|tom-tom drums|a floor tom", H + r"[^/]*tom[^/]*$", group_short=True),
)


@dataclass(frozen=True)
class Instrument:
    name: str
    label: str
    program: int  # General MIDI program (0-based)
    low: int  # playable MIDI note range
    high: int
    sustained: bool  # long notes (bowed/wind) vs struck/plucked


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("accordion", "accordion|an accordion playing|someone playing the accordion", 21, 55, 81, True),
    Instrument("acoustic_guitar", "acoustic guitar|an acoustic guitar playing|someone strumming a guitar", 25, 40, 76, False),
    Instrument("cello", "cello|a cello playing|a bowed cello", 42, 36, 69, True),
    Instrument("clarinet", "clarinet|a clarinet playing|someone playing the clarinet", 71, 50, 84, True),
    Instrument("flute", "flute|a flute playing|someone playing the flute", 73, 60, 93, True),
    Instrument("saxophone", "saxophone|a saxophone playing|a sax solo", 65, 49, 80, True),
    Instrument("trumpet", "trumpet|a trumpet playing|someone playing the trumpet", 56, 55, 82, True),
    Instrument("tuba", "tuba|a tuba playing|a low brass tuba", 58, 28, 58, True),
    Instrument("violin", "violin|a violin playing|a bowed violin", 40, 55, 96, True),
    Instrument("xylophone", "xylophone|a xylophone playing|mallets on a xylophone", 13, 65, 96, False),
    Instrument("piano", "piano|a piano playing|someone playing the piano", 0, 36, 96, False),
    Instrument("church_organ", "church organ|an organ playing|a pipe organ", 19, 36, 84, True),
    Instrument("harp", "harp|a harp playing|plucked harp strings", 46, 36, 91, False),
    Instrument("trombone", "trombone|a trombone playing|a sliding trombone", 57, 40, 72, True),
    Instrument("banjo", "banjo|a banjo playing|a plucked banjo", 105, 48, 81, False),
    Instrument("bagpipes", "bagpipes|bagpipes playing|a bagpipe drone", 109, 55, 77, True),
    Instrument("marimba", "marimba|a marimba playing|wooden mallet percussion", 12, 45, 84, False),
    Instrument("oboe", "oboe|an oboe playing|a reedy oboe", 68, 58, 91, True),
    Instrument("french_horn", "french horn|a french horn playing|a mellow horn", 60, 41, 77, True),
    Instrument("double_bass", "double bass|a plucked double bass|an upright bass", 32, 28, 55, False),
)


def classify(key: str) -> Rule | None:
    """The first rule matching a file key (``usr/share/...`` or ``<zip>!<member>``), else None."""
    if not key.lower().endswith(AUDIO_SUFFIXES):
        return None
    for rule in RULES:
        if rule.matches(key):
            return rule
    return None
