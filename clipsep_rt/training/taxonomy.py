"""Sound classes of the offline corpus v3: rules mapping Debian package files to text labels.

Packages are extracted one per folder (``<packages_root>/<package>/usr/...``). Each file is
named by a *key*: ``<package>/<path inside the package>``, or for members of an archive
(zip, .pk3, .wz) ``<package>/<archive path>!<member>``. Rules are tried in order; the first
one that matches gives the file's class, unmatched files are unused. A rule matches when the
package is one of its ``packages`` (empty: any package not in ``SPEECH_PACKAGES``) and its
``pattern`` is found (``re.search``, case-insensitive) in the key's *name part*: the key
lower-cased, from the package's data folder on (see `name_part`). ``w(...)`` builds a word
pattern: the word not preceded by a letter, so "bark" does not match "disembark".

Labels are "|"-separated paraphrases, the first canonical. Speech is labelled by voice
(`VOICES`: package, folder, gender, language, speaker), music by folder, General-MIDI
instruments and drum kits are rendered from soundfonts (`INSTRUMENTS`, `DRUMS`,
`SOUNDFONTS`) and synthetic speech from festival / flite voices (`TTS_VOICES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AUDIO_SUFFIXES = (".wav", ".ogg", ".flac", ".mp3", ".opus", ".oga", ".wv")  # .wv: WavPack (decoded by PyAV)
ARCHIVE_SUFFIXES = (".zip", ".pk3", ".wz", ".orgue")  # .orgue: a GrandOrgue organ package (zip)


def w(words: str) -> str:
    """Regex: any of the "|"-separated words, neither preceded nor followed by a letter
    (digits, "_", "-", "." and "/" separate words: "bird4_01" is a bird, "battle" no bat)."""
    return r"(?<![a-z])(?:" + words + r")(?![a-z])"


@dataclass(frozen=True)
class Rule:
    name: str  # class folder name
    label: str  # "|"-separated paraphrases, first canonical
    pattern: str  # regex searched in the key's name part
    packages: tuple[str, ...] = ()  # only these packages (empty: every sound-effect package)
    group_short: bool = False  # concatenate short one-shots (from one folder) into >= 1.5 s clips
    exclude: str = ""  # regex that vetoes the match

    def matches(self, package: str, name: str) -> bool:
        if self.packages and package not in self.packages:
            return False
        if not self.packages and package in SPEECH_PACKAGES:
            return False
        if re.search(self.pattern, name, re.IGNORECASE) is None:
            return False
        return not (self.exclude and re.search(self.exclude, name, re.IGNORECASE))


@dataclass(frozen=True)
class Voice:
    package: str
    folder: str  # regex on the name part
    gender: str  # male | female
    language: str
    speaker: str  # distinct speakers get distinct ids (Allison records en and es)


VOICES: tuple[Voice, ...] = (
    Voice("asterisk-core-sounds-en-wav", r"en_us_f_allison/", "female", "en", "allison"),
    Voice("asterisk-core-sounds-es-wav", r"es_mx_f_allison/", "female", "es", "allison"),
    Voice("asterisk-core-sounds-fr-wav", r"fr_ca_f_june/", "female", "fr", "june"),
    Voice("asterisk-core-sounds-it-wav", r"it_it_m_carlo/", "male", "it", "carlo"),
    Voice("asterisk-core-sounds-ru-wav", r"ru_ru_f_ivrvoiceru/", "female", "ru", "ivrvoice-ru"),
    Voice("asterisk-prompt-it-menardi-wav", r"it_it_f_menardi/", "female", "it", "menardi"),
    Voice("kajongg", r"voices/male1/", "male", "en", "kajongg-male1"),
    Voice("kajongg", r"voices/male2/", "male", "en", "kajongg-male2"),
    Voice("kajongg", r"voices/female1/", "female", "en", "kajongg-female1"),
    Voice("kajongg", r"voices/female2/", "female", "en", "kajongg-female2"),
    Voice("kajongg", r"voices/de/male1/", "male", "de", "kajongg-de-male1"),
    Voice("kajongg", r"voices/de/male2/", "male", "de", "kajongg-de-male2"),
    Voice("kajongg", r"voices/de/female1/", "female", "de", "kajongg-de-female1"),
    Voice("kajongg", r"voices/de/female2/", "female", "de", "kajongg-de-female2"),
    # Fish Fillets: "-m-" lines are the small fish (a woman's voice, median F0 ~250 Hz),
    # "-v-" the big fish (a man's voice); both per language package.
    Voice("fillets-ng-data-cs", r"/cs/[^/]*-m-", "female", "cs", "fillets-cs-small-fish"),
    Voice("fillets-ng-data-cs", r"/cs/[^/]*-v-", "male", "cs", "fillets-cs-big-fish"),
    Voice("fillets-ng-data-nl", r"/nl/[^/]*-m-", "female", "nl", "fillets-nl-small-fish"),
    Voice("fillets-ng-data-nl", r"/nl/[^/]*-v-", "male", "nl", "fillets-nl-big-fish"),
    Voice("fillets-ng-data", r"/en/[^/]*-m-", "female", "en", "fillets-en-small-fish"),
    Voice("fillets-ng-data", r"/en/[^/]*-v-", "male", "en", "fillets-en-big-fish"),
)
SPEECH_PACKAGES = frozenset(v.package for v in VOICES)
SPEECH_LABEL = {
    "male": ("man_speaking", "a man speaking|a male voice talking|a man says something"),
    "female": ("woman_speaking", "a woman speaking|a female voice talking|a woman says something"),
}


@dataclass(frozen=True)
class TTSVoice:
    engine: str  # flite | festival
    voice: str  # flite -voice NAME, or festival (voice_NAME)
    package: str  # the Debian package holding the voice
    gender: str
    language: str
    speaker: str  # recorded speaker the voice was built from (kal16 and kal_diphone: one speaker)


TTS_VOICES: tuple[TTSVoice, ...] = (
    TTSVoice("flite", "awb", "flite", "male", "en", "cmu-awb"),
    TTSVoice("flite", "rms", "flite", "male", "en", "cmu-rms"),
    TTSVoice("flite", "slt", "flite", "female", "en", "cmu-slt"),
    TTSVoice("flite", "kal16", "flite", "male", "en", "cmu-kal"),
    TTSVoice("festival", "kal_diphone", "festvox-kallpc16k", "male", "en", "cmu-kal"),
    TTSVoice("festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "female", "en", "cmu-slt"),
    TTSVoice("festival", "msu_ru_nsh_clunits", "festvox-ru", "male", "ru", "msu-nsh"),
)

MUSIC = Rule("music", "music|a piece of music playing|background music", "")
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


S = w  # shorthand in the table

# Sound effects: any package not in SPEECH_PACKAGES unless `packages` is given. Ordered:
# specific rules first (a "fire_archer" attack is an arrow, not a fire).
RULES: tuple[Rule, ...] = (
    # ---------------------------------------------------------------- animals
    Rule("cow", "cow mooing|a cow moos|cattle lowing", S("cattle|cow|cows|moo|bull|calf") + r"[^/]*$", exclude=r"cowbell"),
    Rule("chicken", "chicken clucking|a hen clucks|chickens cackling", S("chicken|hen|rooster")),
    Rule("horse_hooves", "horse hooves galloping|a horse trotting|hoofbeats",
         S("mstep|gallop|canter|hooves|horses_galloping|horse-canter"), group_short=True),
    Rule("horse", "horse neighing|a horse whinnies|a horse snorting", S("horse|foal|death_horse"), exclude=r"rocking_horse|horseman|horse-elf|horse_in_background"),
    Rule("elephant", "elephant trumpeting|an elephant trumpets|an elephant calling", S("elephant")),
    Rule("pig", "pig oinking|a pig squeals|pigs grunting", S("pig|wild_sow|boar")),
    Rule("goat", "goat bleating|a goat bleats|goats bleating", S("goat")),
    Rule("sheep", "sheep bleating|a sheep baas|sheep baaing", S("sheep")),
    Rule("lion", "lion roaring|a lion roars|a big cat growling", S("lion|tiger|jaguar|lynx"), exclude=r"antlion"),
    Rule("camel", "camel grunting|a camel groans|a camel calling", S("camel")),
    Rule("wolf", "wolf howling|a wolf snarls|a wolf growling", S("wolf|wolves|howl")),
    Rule("dog", "dog barking|a dog barks|a barking dog", S("dog|dogs|bark|barkgrowl|civ_dog")),
    Rule("cat", "cat meowing|a cat meows|a kitten mewing", S("cat|kitten|meow")),
    Rule("seagull", "seagulls crying|a gull calls|gulls by the sea", S("gull|seagull|albatross")),
    Rule("owl", "owl hooting|an owl hoots|an owl at night", S("owl|eagle-owl")),
    Rule("crow", "crow cawing|a raven croaks|crows cawing", S("crow|raven|rook")),
    Rule("duck", "duck quacking|a duck quacks|ducks quacking", S("duck|goose|quack"), exclude=r"rubberduck|rubber_duck"),
    Rule("hawk", "hawk screeching|an eagle cries|a bird of prey calling", S("hawk|eagle|falcon|vulture")),
    Rule("birds", "birds chirping|birdsong|birds singing",
         S("birds|bird|birdchirp|bird_twitter|exotic-birds|sparrow|peacock|flamingo|songbird|chirp|tweet|pheasant|quail")),
    Rule("frog", "frogs croaking|a frog croaks|a toad croaking", S("frog|frogs|croak|toad")),
    Rule("crickets", "crickets chirping|insects at night|night crickets", S("cricket|crickets|nightcrickets|grasshopper")),
    Rule("bees", "bees buzzing|a swarm of bees|an insect buzzing", S("bee|bees|beehive|beesting|wasp|insect|fly_buzz")),
    Rule("bat", "bats squeaking|bat wings flapping|a bat flaps its wings", S("bat|bats")),
    Rule("monkey", "monkey chattering|a monkey screeching|an ape hooting", S("monkey|gorilla|chimpanzee|little_monkey")),
    Rule("bear", "bear growling|a bear roars|a grizzly growl", S("bear|giant_panda|koala"), exclude=r"plee-the-bear"),
    Rule("snake", "snake hissing|a snake hisses|a rattlesnake", S("snake|python|hiss|snake_basket")),
    Rule("rabbit", "a rabbit squeaking|a small animal squeaking|a critter chittering", S("rabbit|hamster|squirrel|mouse|chinchilla|ferret")),
    Rule("whale", "whale song|a whale calling|dolphins clicking", S("whale|dolphin")),
    # ---------------------------------------------------------------- people (non-speech)
    Rule("footsteps", "footsteps|someone walking|footsteps on the ground",
         S("footstep|footsteps|step|steps|singlesteps|walk|walking|hstep|concstep|metalfootstep|swimstep|man-steps|step_cloth|step_leather|step_metal|step_echo"),
         group_short=True, exclude=r"stepping_stone|mstep|catapult|battle_machine|ornithopter|airship|golem"),
    Rule("person_screaming", "a person screaming|someone screaming|a scream of terror", S("scream|screaming|wilhelmscream|kamikaze-scream|yell|shriek")),
    Rule("pain_groan", "a person groaning in pain|a man grunting in pain|someone hurt crying out",
         S("pain|pain[0-9]+|hurt|ouch|ugh|injured|grunt|grunts|gasp|groan|female_hit|female_die"), exclude=r"painting"),
    Rule("death_cry", "a dying scream|a death cry|someone dying", S("death|die|die[0-9]+|dying|death_sound|deadman|critdie|gib"),
         exclude=r"death_horse|diesel|zombie|skeleton|goblin|minotaur|antlion|wyvern|grave"),
    Rule("laughter", "people laughing|a man laughing|evil laughter", S("laugh|laugh0[0-9]|haha|hahaha|giggle|chuckle")),
    Rule("crowd", "crowd at a busy market|people chattering in a town|a busy crowd",
         S("crowd|crowd[0-9]+|amb_trade|amb_port|market|marketlow|marketmed|citysounds|chatter")),
    Rule("cheering", "a crowd cheering|applause and cheering|fans cheering", S("cheer|cheering|cheeringloop|applause|sportscroud|hallelujah|boou|fight4life")),
    Rule("snoring", "someone snoring|a person snoring|a sleeper snoring", S("snore|snoring")),
    Rule("coughing", "someone coughing|a person coughs|a cough", S("cough|coughing|sneeze")),
    Rule("heartbeat", "a heartbeat|a beating heart|a pounding heart", S("heartbeat|heart_beat")),
    Rule("whistle", "a whistle blowing|a referee's whistle|someone whistling", S("whistle|fischio|fischiolungo|fischiocorto|referee")),
    Rule("war_cry", "a battle cry|a warrior shouting|a war cry", S("warcry|war_cry|taunt|charge|battlecry")),
    # ---------------------------------------------------------------- creatures (game monsters)
    Rule("zombie", "zombie groaning|a zombie moans|the undead growling", S("zombie|mummy|ghoul|undead")),
    Rule("monster_growl", "a monster growling|a troll roaring|an ogre grunting",
         S("troll|ogre|orc|yeti|monster|minotaur|growl|snarl|roar|behemoth|golem|yeti_roar|beast")),
    Rule("dragon", "a dragon roaring|a dragon breathing fire|a winged beast screeching", S("dragon|wyvern|drake|gryphon|firebird")),
    Rule("skeleton", "skeleton bones rattling|bones clattering|an undead skeleton", S("skeleton|bones")),
    Rule("goblin", "a goblin shrieking|a small creature cackling|an imp screeching", S("goblin|imp|gnome")),
    Rule("ghost", "a ghost wailing|an eerie moan|a spirit howling", S("ghost|wail|spirit|wraith|willowisp|banshee")),
    Rule("insect_monster", "a giant insect screeching|a bug monster chittering|an antlion hissing", S("antlion|spider|scorpion|worm-move|worm-eat")),
    Rule("slime", "slime squelching|a gooey splat|squishy goo", S("slime|goo|gloop|squish|squishy|splat|splatter")),
    # ---------------------------------------------------------------- nature
    Rule("waterfall", "a waterfall|water falling|a waterfall rushing", S("waterfall|waterfall_loop|waterfall_deep|waterfall[0-9]")),
    Rule("river", "river flowing|a stream of running water|a babbling brook", S("river|river_loop|stream|brook|parklandlake|water[0-9]?|env_sounds_water")),
    Rule("sea_waves", "sea waves crashing|waves on the shore|ocean surf", S("wave|waves|oceanwaves|surf|sea|ocean|drums_with_waves"), exclude=r"wave[sf]orm|shockwave|microwave"),
    Rule("splash", "a splash in water|something falling into water|a big splash",
         S("splash|splash_human|splash_aircraft|watersplash|splosh|dropinwater|splashin|splashout|drown|plop|plopp")),
    Rule("water_drip", "water dripping|drips in a cave|a dripping tap", S("drip|droplet|cavedrip|cave_droplets|waterdrip|amb_waterdrip")),
    Rule("rain", "rain falling|rainfall|a rain shower", S("rain|rain-windshield|stormrain|rainfall"), exclude=r"train|rainbow"),
    Rule("thunder", "thunder rumbling|a thunderclap|lightning and thunder",
         S("thunder|thunder_loud|thunder_moderate|thunder_faint|lightning|lightningbolt|stormbolts")),
    Rule("wind", "wind blowing|a howling wind|a gust of wind",
         S("wind|wind[0-9]+|windgust|hollowwind|blowwind|stormwind|cave_wind|snowstorm|blizzard"), exclude=r"window|windmill|wind-8khz"),
    Rule("fire", "fire crackling|a burning fire|flames roaring",
         S("fire|campfire|burning|burn|flame|flames|torch|fire_fire|fire_large|fire_small|open_fire|firestart|fireend|napalm|flamer|firewasteland"),
         exclude=r"firearrow|fire_archer|fireball|firecracker|firework|fire-flower|firestation|fire_extinguish|gunfire|grenadefire|dartfire|misfire|fire_flint|slime-fire|firetruck|firebird|fire-fadeout"),
    Rule("lava", "lava bubbling|molten lava gurgling|a bubbling volcano", S("lava|lava[0-9]|cool_lava|env_sounds_lava|magma|lavarumble")),
    Rule("earthquake", "an earthquake rumbling|the ground shaking|a rumbling quake", S("quake|earthquake|rumble|rumble-rough"), exclude=r"quaddamage"),
    Rule("falling_rocks", "rocks falling|a rockslide|stones tumbling", S("falling_rocks|rockfall|rockslide|cave-in|debris|avalanche|rubble")),
    Rule("forest_ambience", "forest ambience|birds and wind in a forest|the sounds of a forest", S("forest|forest[0-9]|woods|jungle|swamp|country"), exclude=r"locomotive"),
    Rule("countryside", "countryside ambience|insects and birds in the countryside|a farm in the daytime",
         S("dayscape|amb_farm|farm|farm[0-9]|organicfarm|meadow|parklandplane|green[0-9]")),
    Rule("night_ambience", "night ambience|a quiet night outdoors|night time sounds", S("night|nightscape|horror")),
    Rule("cave_ambience", "cave ambience|an echoing cave|a dark cavern", S("cave|cavern|dungeon")),
    # ---------------------------------------------------------------- tools and work
    Rule("hammering", "hammering|someone hammering|a hammer striking",
         S("hammer|hammering|con_wood|con_stone|anvil|anvil_loop|blacksmith|smith|toolsmith"),
         exclude=r"hammerhead"),
    Rule("sawing", "sawing wood|a saw cutting|someone sawing", S("saw|sawing|con_saw|benchsaw|chainsaw|sawmill")),
    Rule("chopping_wood", "chopping wood with an axe|an axe chopping a tree|woodcutting", S("lumber|lumbering|woodcutting|chop|chopping|dig_choppy|axe_chop|tree_chop")),
    Rule("mining", "a pickaxe striking rock|mining stone|chipping at rock", S("mining|mine_stone|pickaxe|stonecutter|oremine|coalmine|quarry|gather_rock|gather_stone|gather_metal"), exclude=r"minetest|mine-tick|landmine"),
    Rule("digging", "digging soil|a shovel in the earth|farming the field", S("dig|digging|hoe|shovel|gather_field|farming|gravel_dig|dirt_dig|dug|harvest"), exclude=r"digit"),
    Rule("drill", "a power drill|a drill whirring|an electric drill", S("drill|drilling")),
    Rule("metal_clank", "metal clanking|a metal object struck|clanging metal",
         S("clank|clang|metal_clang|metalhit|metal|metalhitground|clank[0-9]|tink|tink[0-9]|dug_metal|ricochet|richet|ric"), exclude=r"metalfootstep|step_metal|metal_footstep|skid|fizzle|furnace"),
    Rule("wood_knock", "a knock on wood|wood thumping|a wooden knock", S("knock|wood|wooden|wood_hit|wooden_bridge|dig_snappy"), exclude=r"woodpecker|woodcut|wood_grouse|woods|wood_footstep"),
    Rule("glass_break", "glass shattering|a window breaking|breaking glass",
         S("glass|glass_break|break_glass|shatter|shattering|icecrash|crystallo-shatter|iceblock|window_break|vase"), exclude=r"musical_glasses|glass_door"),
    Rule("door", "a door opening|a door slamming|a creaking door",
         S("door|door_open|door_close|doorslam|gate|fencegate|stonegate|stone_open|hatch"), exclude=r"glass_door|doors_glass"),
    Rule("chest_open", "a chest opening|a wooden box being opened|a lid creaking", S("chest|open_chest|lid|box_open|crate")),
    Rule("coins", "coins jingling|money clinking|a handful of coins", S("coin|coins|coin[0-9]|money|cash|inventory_coins|phase_end_turn_01_coins|coinslot|itemsold|shop")),
    Rule("keyboard_typing", "keyboard typing|someone typing on a keyboard|keys clacking", S("typewriter|typing|keyboard|keystroke"), packages=("bucklespring-data", "frozen-bubble-data", "qabcs-data")),
    Rule("clock_ticking", "a clock ticking|a ticking clock|a watch ticking", S("clock|tick|ticking|timer|watch|st-timer|mine-tick|old-mine-tick"), exclude=r"watchtower"),
    Rule("bell", "a bell ringing|a church bell|a bell chiming", S("bell|bells|savebell|savebell_low|savebell2|loud-bell|chime|gong|checkpoint-ding|ding"), exclude=r"cowbell|bellows"),
    Rule("alarm", "an alarm going off|a siren wailing|an alarm bell", S("alarm|siren|klaxon|klaxon-funny|alarmalert|policecar|firetruck|gear-hrn|gpws")),
    Rule("beep", "electronic beeping|a beep|a device beeping", S("beep|beep[0-9]|bleep|blip|avionics|radclik|bzzt|bzzt2|flarm")),
    Rule("click", "a click|a button click|a switch clicking", S("click|clik|button|switch|menuclick|mouse_click|toggle|st-switch|menumove|menuok|turnkey|triggerup|triggerdown"), exclude=r"clicks"),
    Rule("camera_shutter", "a camera shutter|a camera clicking|taking a photo", S("camera|shutter|cameratakespicture|screenshot|camera_lens")),
    Rule("paper", "paper rustling|pages turning|a sheet of paper", S("paper|page|book|inventory_book|newspaper|read_sign|scroll|origami"), exclude=r"paper_airplane"),
    Rule("cloth", "cloth rustling|fabric moving|clothes rustling", S("cloth|inventory_cloth|leather|inventory_leather|rustle|bushrustle|maille|inventory_maille|armor")),
    Rule("zipper", "a zipper|a zip being pulled|unzipping", S("zipper|zip")),
    Rule("pouring", "liquid pouring|water being poured|glugging liquid", S("pour|pouring|gulp|drink|potion|inventory_potion|glug|bubble|bubbles|bubblegum")),
    Rule("eating", "someone eating|chewing and munching|a crunch of food", S("eat|eating|chew|munch|crunch|bite|fruit|meat")),
    # ---------------------------------------------------------------- weapons and combat
    Rule("sword_clash", "swords clashing|a sword fight|metal blades striking",
         S("sword|swordhit|sword_attack|swordslice|swordstaff|sword_fighting|saber|blade|knife|knifeslice|knifeswish|knifedraw|knifesheathe|dagger|fleshstab|clawslice|mace|cudgel"),
         exclude=r"swordman/sounds/(?:select|ack|die|death)"),
    Rule("arrow", "an arrow being shot|a bow firing arrows|arrows whooshing",
         S("arrow|arrowfly|bow_attack|bow|crossbow|arrow_wall|firearrow|archer|fire_archer|javelin|jav|spear|pike|sling"), exclude=r"bowling|elbow|rainbow"),
    Rule("shield_hit", "a weapon hitting a shield|a blow on a shield|shield struck", S("shield|shield_|block|blocked")),
    Rule("punch", "a punch|a fist hitting flesh|someone being hit", S("punch|fist|slap|thwack|smack|whack|hit|hit[0-9]|kick|stomp|impact|staffbody|staffhead|fleshimp|gibimp|swing_then_hit"),
         exclude=r"shield|arrow|kick_|kick[0-9]|kick-|bass|drum|carhit|metalhit|nohit"),
    Rule("whoosh", "a whoosh|something swinging through the air|a swish", S("whoosh|swish|swing|swing_then_nohit|lowwhoosh|midwhoosh|highwhoosh|movewhoosh|whooshhit|whizz|nexwhoosh|throw")),
    Rule("gunshot", "a gunshot|a gun being fired|a rifle shot",
         S("gunshot|gun|shoot|shot|shoot[0-9]|shotgun|rifle|pistol|musket|musket_volley|smg|minigun|machinegun|machgf|gatling|autocannon|thunderstick|campingrifle|tripleshot|bullet|casings"),
         exclude=r"screenshot|bowling_shoot|shoot.*arrow|teamshoot"),
    Rule("cannon", "a cannon firing|artillery fire|a cannon blast", S("cannon|cannon[0-9]|cannons|artillery|mortar|howitzer|ballist|catapult|siege|siegeprojectilehit|ram|trebuchet")),
    Rule("laser", "a laser gun firing|a sci-fi laser|a zapping laser beam",
         S("laser|laser[0-9]|lasers|laser_rifle|single_laser|phaser|plasma|plasma_pistol|zapper|zap|bzap|ion|beam|beam0|pulse|single_pulse|blaster|electro|crylink|neutron|ripper|laserdeath")),
    Rule("explosion", "an explosion|a loud blast|something exploding",
         S("explosion|explosion[0-9]|explode|explode[0-9]|explosions|boom|blast|blast_sound|bomb|bombing|bombdrop|nuke|nuke-explosion|grenade|mine|tnt|tnt_explode|exp|medexp|lrgexp|empexplode|bansheeexp|destruction|destroy|rocketexplosion|detonate|det"),
         exclude=r"mine-tick|minetest|mines?_|miner|mineral|ore_?mine|coal_?mine|mining"),
    Rule("rocket_launch", "a rocket launching|a missile whooshing|a rocket taking off",
         S("rocket|rocket[0-9]|missile|rlauncher|glauncher|launch|nuke-missile|guided-missile|dumb-missile|smoke-missile|seeker")),
    Rule("fireworks", "fireworks exploding|firecrackers popping|a fireworks show", S("firework|fireworks|fireworks_show|firecracker")),
    Rule("reload", "a gun being reloaded|a weapon reloading|a magazine clicking in", S("reload|weapload|cock|outofammo|weapswitch")),
    Rule("magic_spell", "a magic spell|a sparkling magic sound|a wizard casting a spell",
         S("magic|spell|heal|healing|summon|holy|teleport|teleporter|portal|telein|teleout|freeze|timestop|shock|power|powerup|invincible|upgrade|level_up|lifeup|extralife|grow|sparkle"),
         exclude=r"power_?coal|powersolar|powerline|power-jump"),
    # ---------------------------------------------------------------- vehicles and machines
    Rule("car_engine", "a car engine running|a car revving|an engine idling",
         S("car|car_revup|car_accel|carengine|engine-car|engine|engine_large|engine_small|engine-1|porsche_engine|viper|ford|lamborghini|ferrari|impreza|evo7|corolla|mclaren|lotus|renault|nsx|xj220|gt40|alpha-romeo|f360|turbo|backfire|exhaust"),
         exclude=r"spaceship|helicopter|jet|aircraft|turbine|turboprop|turbojet|cart|carpet|card|carhorn|carhit"),
    Rule("car_horn", "a car horn honking|a vehicle horn|a honking horn", S("carhorn|carhorn[0-9]|car_horn|honk|hooter")),
    Rule("car_crash", "a car crash|vehicles colliding|a car hitting something", S("crash|crash[0-9]|carhit|carhit[0-9]|bottom_crash|crash_ground|crash_obstruction|collision|ballcollision"), exclude=r"crash0[0-9]\.ogg$|cymbal"),
    Rule("tire_skid", "tires screeching|a car skidding|squealing tyres", S("skid|skid_tyres|skid_metal|land_wheel_skid|screech|squeal|tires|brake|snowskid"), exclude=r"ski_skid"),
    Rule("motorcycle", "a motorcycle engine|a motorbike revving|a scooter", S("motorbike|motorcycle|scooter|moped")),
    Rule("truck", "a truck engine|a heavy vehicle rumbling|a tractor running", S("truck|tractor|lorry|tank-move|tankmove|tank|vehicle|vehicle-sound|engine-vehicle|excavator|bulldozer|tracks"),
         exclude=r"tractor_beam|tank-explosion|vehicle-explosion"),
    Rule("train", "a train passing|a steam locomotive|a railway train", S("train|railtrain|locomotive|steamlocomotive|railway|minecart|cart|carts_cart")),
    Rule("helicopter", "a helicopter flying|helicopter rotor blades|a chopper overhead", S("helicopter|rotor|rotor-2blade|blade_vortex|hh60|hh65|apache|chopper|quadrocopter")),
    Rule("airplane", "an airplane flying|a propeller plane|a small aircraft engine",
         S("airplane|aircraft|cessna|prop|propeller|turboprop|engine-prop|p51d|r-1535|plane|ornithopter|orni|airship|biplane")),
    Rule("jet_engine", "a jet engine roaring|a jet plane flying past|a jet taking off",
         S("jet|jet_engine|turbojet|turbojet_fan|turbine|turbine_loop|f16|f18|t38|flyby|afterburner|airplane_jetengine")),
    Rule("spaceship", "a spaceship engine humming|a sci-fi spacecraft|a starship flying",
         S("spaceship|spaceship_engine|hyperspace|hyperspace_engine|starship|warship|ufo|thruster|afb")),
    Rule("machine", "machinery running|an industrial machine humming|factory machines",
         S("machine|machine[0-9]+|machinerydrone|factory|factoryloop|industry|industryhigh|industrylight|generator|pneumatic|compressor|pump|mill|windmill|conveyor|hum|drone|motor"),
         exclude=r"machinegun|battle_machine|motorbike|motorcycle"),
    Rule("electricity", "electricity buzzing|an electric spark|a high-voltage crackle", S("electric|spark|static|static-radio|radionoise|substation|powerline|zap|tesla|buzz|energy|forcefield"), exclude=r"electric_guitar"),
    Rule("robot", "a robot moving|robotic servo sounds|a mechanical robot", S("robot|droid|bot_sounds|mech|servo|battle_machine|technician")),
    Rule("traffic", "city traffic|cars passing in the street|a busy road", S("traffic|trafichigh|traficlow|distant_cars|road|road-ride|street|city")),
    Rule("boat", "a boat on the water|a ship's horn|a ship creaking", S("boat|ship|ship_of_the_line|harbor|port|sail|submarine|ferry"), exclude=r"spaceship|airship|warship|shipyard"),
    # ---------------------------------------------------------------- sports, toys, interface
    Rule("ball_bounce", "a ball bouncing|a bouncing ball|a rubber ball", S("ball|ball_bounce|bounce|bounce[0-9]|boing|boink|rebound|rubber_ball|football|volleyball|bowling|bowling_roll|trampoline"), exclude=r"fireball|ballist|balloon"),
    Rule("pop", "a pop|a bubble popping|a cork popping", S("pop|pops|crystallo-pop|balloon|balloons|inflate|pshit|fizz|sizzle")),
    Rule("jump", "a cartoon jump|a springy boing|a jumping sound", S("jump|bigjump|hop|jumppad|jumppad[0-9]|power-jump|spring|flip|flop|croak-jump"), exclude=r"jump_rope"),
    Rule("pickup", "an item being picked up|a collectible chime|a video game pickup", S("pickup|pkup|itempick|itemspawn|grab_collectable|taking-item|taking-item-[0-9]|item|collect|gem|inventory_gem|inventory_object|flying_loot|loot"),
         exclude=r"itemsold|itemrepaired|item_cant|requires"),
    Rule("fanfare", "a victory fanfare|a triumphant jingle|a short fanfare", S("fanfare|victory|race_finish|race_finish_victory|tada|won|win|success|successful|welldone|alarmvictory|goal_scored|game_won|excellent")),
    Rule("failure_jingle", "a failure sound|a losing jingle|a game over tune", S("lose|lost|fail|failure|gameover|gmeover|game_lost|takeover_game_lost|consolefail|test_fail")),
    Rule("horn_signal", "a horn blowing|a war horn sounding|a hunting horn call", S("horn|horn-signals|warhorn|eerie_fantasy_horn|hunting_horn|natural_horn|signal"), exclude=r"carhorn|gear-hrn|french_horn"),
    Rule("drum_roll", "war drums beating|a marching drumbeat|tribal drums", S("war_drum|wardrum|drums|drumroll|drum_roll|march|battlemarch|tribal")),
    Rule("radio_voice", "a radio transmission|a voice over a radio|a walkie-talkie", S("radio|walkie-talkie|hail|transmission|sara_airport_pa|pa_system|announcer"), exclude=r"radclik|radionoise|static-radio"),
)


@dataclass(frozen=True)
class Instrument:
    name: str
    label: str
    program: int  # General MIDI program (0-based)
    low: int  # playable MIDI note range
    high: int
    sustained: bool  # long notes (bowed/wind) vs struck/plucked
    samples: str = ""  # regex matching sampled one-shots of this instrument (name part)


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("accordion", "accordion|an accordion playing|someone playing the accordion", 21, 55, 81, True, S("accordion|squeezebox|hand_organ")),
    Instrument("acoustic_guitar", "acoustic guitar|an acoustic guitar playing|someone strumming a guitar", 25, 40, 76, False,
               r"belofilms_guitarstrums/|" + S("guitar|latin_guitar|steel_guitar01|lute|ukulele")),
    Instrument("electric_guitar", "electric guitar|a distorted electric guitar|an electric guitar riff", 30, 40, 80, False, S("electric_guitar|steel_guitar_[a-z_]*distorted")),
    Instrument("bass_guitar", "bass guitar|a bass guitar playing|a funky bass line", 33, 28, 55, False, S("bassslap|basses/|bassloops/")),
    Instrument("cello", "cello|a cello playing|a bowed cello", 42, 36, 69, True, S("cello")),
    Instrument("clarinet", "clarinet|a clarinet playing|someone playing the clarinet", 71, 50, 84, True, S("clarinet")),
    Instrument("flute", "flute|a flute playing|someone playing the flute", 73, 60, 93, True, S("flute|flute01|western_concert_flute|gnu_flute|quena|ney|xun|recorder")),
    Instrument("saxophone", "saxophone|a saxophone playing|a sax solo", 65, 49, 80, True, S("saxophone|sax")),
    Instrument("trumpet", "trumpet|a trumpet playing|someone playing the trumpet", 56, 55, 82, True, S("trumpet")),
    Instrument("tuba", "tuba|a tuba playing|a low brass tuba", 58, 28, 58, True, S("tuba")),
    Instrument("violin", "violin|a violin playing|a bowed violin", 40, 55, 96, True, S("violin|fiddle|erhu|rabel")),
    Instrument("viola", "viola|a viola playing|a bowed viola", 41, 48, 84, True, S("viola|vla_g_major")),
    Instrument("string_ensemble", "string ensemble|an orchestra's strings|a string section playing", 48, 36, 88, True, S("strings|stringsnpads/[^/]*string")),
    Instrument("xylophone", "xylophone|a xylophone playing|mallets on a xylophone", 13, 65, 96, False, S("xylophone")),
    Instrument("piano", "piano|a piano playing|someone playing the piano", 0, 36, 96, False, S("piano|piano0[0-9]|grand_piano")),
    Instrument("electric_piano", "electric piano|a Rhodes electric piano|an electric piano playing", 4, 40, 88, False, S("e_piano|e_piano_accord")),
    Instrument("harpsichord", "harpsichord|a harpsichord playing|a baroque harpsichord", 6, 41, 89, False, S("harpsichord")),
    Instrument("church_organ", "church organ|an organ playing|a pipe organ", 19, 36, 84, True, S("church_organ|organ|aeoline"), ),
    Instrument("electric_organ", "electric organ|a Hammond organ|an electronic organ", 16, 36, 84, True, S("e_organ")),
    Instrument("harp", "harp|a harp playing|plucked harp strings", 46, 36, 91, False, S("harp|zither|yangqin")),
    Instrument("trombone", "trombone|a trombone playing|a sliding trombone", 57, 40, 72, True, S("trombone")),
    Instrument("banjo", "banjo|a banjo playing|a plucked banjo", 105, 48, 81, False, S("banjo")),
    Instrument("bagpipes", "bagpipes|bagpipes playing|a bagpipe drone", 109, 55, 77, True, S("bagpipes|bagpipe|zurna|dulzaina")),
    Instrument("marimba", "marimba|a marimba playing|wooden mallet percussion", 12, 45, 84, False, S("marimba|slit_drum")),
    Instrument("oboe", "oboe|an oboe playing|a reedy oboe", 68, 58, 91, True, S("oboe")),
    Instrument("bassoon", "bassoon|a bassoon playing|a low woodwind", 70, 34, 65, True, S("bassoon")),
    Instrument("french_horn", "french horn|a french horn playing|a mellow horn", 60, 41, 77, True, S("french_horn")),
    Instrument("double_bass", "double bass|a plucked double bass|an upright bass", 32, 28, 55, False, S("double_bass|contrabass")),
    Instrument("harmonica", "harmonica|a harmonica playing|a blues harp", 22, 60, 84, True, S("harmonica|kazoo")),
    Instrument("vibraphone", "vibraphone|a vibraphone playing|a shimmering vibraphone", 11, 53, 89, False, S("vibraphone")),
    Instrument("glockenspiel", "glockenspiel|a glockenspiel playing|bright metal bells", 9, 72, 108, False, S("glockenspiel|musical_glasses")),
    Instrument("sitar", "sitar|a sitar playing|a twangy sitar", 104, 48, 77, False, S("sitar")),
    Instrument("steel_drums", "steel drums|a steel pan playing|a caribbean steel drum", 114, 52, 88, False, S("steel_drum|steelpan|hang")),
    Instrument("choir", "a choir singing|choir voices|a chorus of voices ahh", 52, 48, 79, True, S("choir|chorus")),
    Instrument("synth_lead", "synthesizer lead|a synth lead melody|an electronic synthesizer", 81, 48, 84, True, S("shapes/|waveforms/")),
    Instrument("timpani", "timpani|timpani drums|kettle drums rolling", 47, 36, 57, False, S("timpani")),
    Instrument("celesta", "celesta|a celesta playing|a tinkling celesta", 8, 60, 96, False, S("celesta")),
    Instrument("music_box", "music box|a music box playing|a wind-up music box melody", 10, 60, 96, False, S("music_box|musicbox")),
    Instrument("tubular_bells", "tubular bells|orchestral chimes|tubular bells ringing", 14, 60, 77, False, S("tubular_bells|chimes")),
    Instrument("dulcimer", "dulcimer|a hammered dulcimer|a dulcimer playing", 15, 48, 84, False, S("dulcimer")),
    Instrument("pan_flute", "pan flute|pan pipes playing|a breathy pan flute", 75, 60, 96, True, S("pan_flute|panpipes|pan_pipes")),
    Instrument("ocarina", "ocarina|an ocarina playing|a clay ocarina", 79, 60, 89, True, S("ocarina")),
    Instrument("shakuhachi", "shakuhachi|a japanese bamboo flute|a shakuhachi playing", 77, 55, 84, True, S("shakuhachi")),
    Instrument("koto", "koto|a koto playing|plucked japanese koto strings", 107, 48, 84, False, S("koto")),
    Instrument("kalimba", "kalimba|a thumb piano|a kalimba playing", 108, 55, 84, False, S("kalimba|mbira")),
    Instrument("shamisen", "shamisen|a shamisen playing|a twangy plucked shamisen", 106, 50, 79, False, S("shamisen")),
    Instrument("piccolo", "piccolo|a piccolo playing|a high piccolo flute", 72, 74, 102, True, S("piccolo")),
    Instrument("english_horn", "english horn|a cor anglais playing|a mellow english horn", 69, 52, 81, True, S("english_horn|cor_anglais")),
    Instrument("brass_section", "brass section|a brass ensemble|horns and trumpets together", 61, 40, 80, True, S("brass_section|latin_brass")),
    Instrument("synth_pad", "synth pad|a warm synthesizer pad|an ambient synth pad", 88, 40, 84, True, S("pad|pads")),
)


@dataclass(frozen=True)
class Drum:
    name: str
    label: str
    notes: tuple[int, ...]  # General MIDI percussion keys (channel 10)
    samples: str  # regex on sampled one-shots' file names (drum kits, lmms drums)


DRUMS: tuple[Drum, ...] = (
    Drum("kick_drum", "a kick drum|a bass drum beat|a thumping kick drum", (35, 36), S("kick|bassdrum|bass_drum|bd|kik")),
    Drum("snare_drum", "a snare drum|a snare hit|a snare drum roll", (38, 40), S("snare|sd|snr")),
    Drum("hi_hat", "a hi-hat|hi-hat cymbal ticking|a closed hi-hat", (42, 44, 46), S("hihat|hi-hat|hhat|hat|hh|chik|beatboxchik")),
    Drum("cymbal", "a cymbal crash|a ride cymbal|a crashing cymbal", (49, 51, 52, 55, 57, 59), S("crash|ride|cymbal|cymbals|china|splash")),
    Drum("tom_drum", "a tom drum|tom-tom drums|a floor tom", (41, 43, 45, 47, 48, 50), S("tom|toms|tom_hi|tom_low|tom_mid")),
    Drum("hand_clap", "hand claps|people clapping|a hand clap", (39,), S("clap|claps|handclap")),
    Drum("cowbell", "a cowbell|a cowbell clanking|a cowbell rhythm", (56,), S("cowbell|cow_bell")),
    Drum("bongo", "bongo drums|congas playing|hand drums", (60, 61, 62, 63, 64), S("bongo|conga|djembe|tabla|changu|ipu|cuica|darbuka")),
    Drum("shaker", "a shaker|maracas shaking|a tambourine jingling", (54, 69, 70, 82), S("shaker|maracas|tambourine|tamb|cabasa|ratchet")),
)
DRUM_PACKAGES = ("hydrogen-drumkits", "hydrogen-data", "lmms-common", "cube2-data", "qabcs-data", "chuck-data", "exadrums")
INSTRUMENT_SAMPLE_PACKAGES = ("lmms-common", "hydrogen-drumkits-effects", "qabcs-data", "cube2-data", "supertuxkart-data")


@dataclass(frozen=True)
class SoundFont:
    package: str
    path: str  # inside the package
    kind: str  # melodic (GM) | drums (only a drum kit in bank 0)
    note: str
    skip: tuple[str, ...] = ()  # classes not rendered from this font (their samples are another allowed font's)


# Classes whose General-MIDI preset plays sample data byte-identical to another font's,
# compared sample by sample (sdta/pdta chunks) for every preset and drum key the renderer
# uses. csound's GM GS Bank is mostly TimGM6mb's samples: its presets that play them wholly
# or mostly (34 instruments by program, saxophone, french horn and choir through other
# programs, 8 of the 9 drum classes) are not rendered again. The held-out A320U shares one
# or two samples in six instruments and two cymbal keys with the training fonts: those
# classes are not rendered from it, so its cross_source clips share no sample with training.
_GMBANK_SHARES_TIMGM6MB = (
    "acoustic_guitar", "electric_guitar", "bass_guitar", "cello", "clarinet", "tuba", "violin", "viola", "xylophone",
    "electric_piano", "harpsichord", "church_organ", "electric_organ", "trombone", "banjo", "bagpipes", "marimba",
    "bassoon", "double_bass", "vibraphone", "glockenspiel", "sitar", "steel_drums", "synth_lead", "timpani", "celesta",
    "dulcimer", "ocarina", "koto", "kalimba", "shamisen", "piccolo", "english_horn", "synth_pad",
    "saxophone", "french_horn", "choir",
    "kick_drum", "snare_drum", "hi_hat", "cymbal", "hand_clap", "cowbell", "bongo", "shaker",
)
_A320U_SHARES = ("church_organ", "glockenspiel", "timpani", "celesta", "choir", "music_box", "cymbal")

SOUNDFONTS: tuple[SoundFont, ...] = (
    SoundFont("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2", "melodic", "TimGM6mb (Tim Brechbill)"),
    SoundFont("csound-soundfont", "usr/share/sounds/sf2/sf_GMbank.sf2", "melodic",
              "csound's GM GS Bank (public domain); most presets reuse TimGM6mb's samples", _GMBANK_SHARES_TIMGM6MB),
    SoundFont("denemo-data", "usr/share/sounds/sf2/A320U.sf2", "melodic", "Airfont 320 (Milton Paredes), Denemo's GM font",
              _A320U_SHARES),
    SoundFont("avldrums.lv2-soundfont", "usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "drums", "AVL Drumkits Black Pearl"),
    SoundFont("avldrums.lv2-soundfont", "usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2", "drums", "AVL Drumkits Red Zeppelin"),
)
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


CATEGORY_RANGES = (  # first rule of each category in RULES order
    ("cow", "animals"), ("footsteps", "people (non-speech)"), ("zombie", "creatures"), ("waterfall", "nature"),
    ("hammering", "tools and household"), ("sword_clash", "weapons and combat"), ("car_engine", "vehicles and machines"),
    ("ball_bounce", "sports, toys and signals"),
)


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
