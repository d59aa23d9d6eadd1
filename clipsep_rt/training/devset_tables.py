"""The dev set's reviewed tables: which files of the held-out packages are used and as which
class (`HELDOUT_TABLE`), and one unseen wording per class (`PARAPHRASES`)."""

from __future__ import annotations

AUTO = "AUTO"  # table value: the taxonomy's own rule labels these files (checked to be right)

OC = r"usr/share/games/openclonk/"
SND = OC + r"Sound\.ocg/"
SCR = r"usr/share/scratch/Media/Sounds/"
MIC = r"usr/share/games/micropolis/res/sounds/"
SIM = r"usr/share/games/simutrans/pak/sound/"
HOM = r"usr/share/games/minetest/mods/homedecor/"
ICO = r"usr/share/sounds/sound-icons/"

# (package, regex searched in the path inside the package, class | AUTO). First match wins;
# files no row matches are not used. Reviewed 2026-12-07 by file name, duration and (where
# unsure) spectrum; left out on purpose: openclonk's fantasy animals (Chippie, Mooq, Puka,
# Wipf, Zap, Monster, LavaCore) and the Clonks' gibberish "Confirm/Doubt/Decline" voices,
# scratch's sung "Vocals", electronic effects and mixed music loops, micropolis' spoken
# vowels and words, one-of-a-kind clips (rain, wind, owl, wolf, rooster, seagulls, sea lion,
# a ship's horn, typing, a siren) and clips whose content the name does not settle
# (micropolis "police", "cuckoo", "ignition"; simutrans "horse" (neigh then hooves),
# "arctic", "desert", "tropic", "crossing", "tree-cutting"; openclonk "Rustle", "Bubble").
HELDOUT_TABLE: tuple[tuple[str, str, str | None], ...] = (
    # mp3s whose decoding (libsndfile / mpg123) differs from run to run: corrupt frames
    ("scratch", SCR + r"(?:Animal/Cat|Human/Laugh-male3|Human/Scream-male2|Effects/WaterDrop)\.mp3$", None),
    # ---------------------------------------------------------------- animals
    ("scratch", SCR + r"Animal/Dog[12]\.wav$", AUTO),
    ("scratch", SCR + r"Animal/(?:Kitten|Meow)\.wav$", AUTO),
    ("scratch", SCR + r"Animal/(?:Duck|Goose)\.wav$", AUTO),
    ("micropolis-data", MIC + r"quack(?:quack)?\.wav$", "duck"),
    ("scratch", SCR + r"Animal/Bird\.wav$", AUTO),
    ("sound-icons", ICO + r"canary-long\.wav$", "birds"),
    ("openclonk-data", SND + r"Environment\.ocg/BirdsLoop\.ogg$", "birds"),
    ("scratch", SCR + r"Animal/Crickets?\.wav$", AUTO),
    ("openclonk-data", SND + r"Animals\.ocg/Bat\.ocg/(?:Chirp|Flutter[0-9])\.wav$", "bat"),
    # ---------------------------------------------------------------- people (non-speech)
    ("scratch", SCR + r"Human/(?:Cough|Sneeze)-(?:fe)?male\.wav$", AUTO),
    ("scratch", SCR + r"Human/Laugh-[a-z0-9]+\.wav$", AUTO),
    ("openclonk-data", SND + r"Clonk\.ocg/Skin\.ocg/[^/]+/Laughter[0-9]\.wav$", "laughter"),
    ("scratch", SCR + r"Human/Scream-[a-z0-9]+\.wav$", AUTO),
    ("openclonk-data", SND + r"Clonk\.ocg/Skin\.ocg/[^/]+/Scream[0-9]\.wav$", "person_screaming"),
    ("scratch", SCR + r"Human/Footsteps-[12]\.(?:wav|mp3)$", AUTO),
    ("openclonk-data", SND + r"Clonk\.ocg/Movement\.ocg/Step(?:Hard|Soft)[0-9]\.ogg$", "footsteps"),
    ("openclonk-data", SND + r"Clonk\.ocg/Action\.ocg/Munch[0-9]\.(?:ogg|wav)$", "eating"),
    # ---------------------------------------------------------------- nature
    ("openclonk-data", SND + r"Environment\.ocg/Lightning\.ocg/Thunder[0-9]\.ogg$", AUTO),
    ("openclonk-data", SND + r"Environment\.ocg/Disasters\.ocg/Earthquake(?:End)?\.ogg$", "earthquake"),
    ("openclonk-data", SND + r"Fire\.ocg/Fire\.ogg$", "fire"),
    ("minetest-mod-homedecor", HOM + r"fake_fire/sounds/fire_small\.ogg$", AUTO),
    ("openclonk-data", SND + r"Liquids\.ocg/Splash[0-9]\.wav$", AUTO),
    ("scratch", SCR + r"Effects/Plunge\.wav$", "splash"),
    ("openclonk-data", SND + r"Liquids\.ocg/Waterdrop[0-9]\.wav$", "water_drip"),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Rock\.ocg/Rockfall[0-9]\.wav$", "falling_rocks"),
    # ---------------------------------------------------------------- household and tools
    ("minetest-mod-homedecor", HOM + r"homedecor_doors_and_gates/sounds/homedecor_(?:door_open|door_close|gate_open_close)\.ogg$", "door"),
    ("scratch", SCR + r"Effects/Door(?:Close\.mp3|Creak\.wav)$", "door"),
    ("openclonk-data", SND + r"Structures\.ocg/Door(?:Open|Close)[0-9]\.wav$", "door"),
    ("openclonk-data", SND + r"Structures\.ocg/Chest\.ocg/(?:Open|Close)\.ogg$", AUTO),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Glass\.ocg/Glass(?:Break|Shatter)\.ogg$", "glass_break"),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Metal\.ocg/(?:Dull|Light)MetalHit[0-9]\.ogg$", "metal_clank"),
    ("openclonk-data", SND + r"Hits\.ocg/BucketHit[0-9]\.wav$", "metal_clank"),
    ("openclonk-data", SND + r"Hits\.ocg/Materials\.ocg/Wood\.ocg/(?:Dull)?WoodHit[0-9]\.ogg$", "wood_knock"),
    ("simutrans-pak64", SIM + r"gavel\.wav$", "wood_knock"),
    ("openclonk-data", SND + r"Objects\.ocg/Pickaxe\.ocg/Clang(?:Hard)?[0-9]\.wav$", "mining"),
    ("openclonk-data", SND + r"Clonk\.ocg/Action\.ocg/Dig\.ocg/Dig[0-9]\.wav$", "digging"),
    ("openclonk-data", SND + r"Environment\.ocg/Tree\.ocg/Chop[0-9]\.wav$", "chopping_wood"),
    ("simutrans-pak64", SIM + r"buzzsaw\.wav$", "sawing"),
    ("openclonk-data", SND + r"Structures\.ocg/SawmillRipcut\.ogg$", "sawing"),
    ("simutrans-pak64", SIM + r"jackhammer\.wav$", "drill"),
    ("openclonk-data", SND + r"Structures\.ocg/Elevator\.ocg/Drilling\.ogg$", AUTO),
    ("minetest-mod-homedecor", HOM + r"homedecor_gastronomy/sounds/insert_coin\.ogg$", AUTO),
    ("simutrans-pak64", SIM + r"cash\.wav$", AUTO),
    ("openclonk-data", SND + r"UI\.ocg/(?:Cash\.ogg|UnCash[0-9]\.wav)$", "coins"),
    ("minetest-mod-homedecor", HOM + r"homedecor_common/sounds/homedecor_faucet\.ogg$", "pouring"),
    ("scratch", SCR + r"Effects/WaterRunning\.mp3$", "pouring"),
    # ---------------------------------------------------------------- signals
    ("scratch", SCR + r"Effects/BellToll\.wav$", "bell"),
    ("scratch", SCR + r"Percussion/Gong\.wav$", AUTO),
    ("minetest-mod-homedecor", HOM + r"homedecor_electrical/sounds/homedecor_doorbell\.ogg$", "bell"),
    ("micropolis-data", MIC + r"beep\.wav$", AUTO),
    ("scratch", SCR + r"Electronic/ComputerBeeps[12]\.wav$", "beep"),
    ("simutrans-pak64", SIM + r"click\.wav$", AUTO),
    ("openclonk-data", SND + r"UI\.ocg/Click\.wav$", "click"),
    ("openclonk-data", SND + r"Structures\.ocg/SwitchFlip\.wav$", "click"),
    ("micropolis-data", MIC + r"honkhonk-(?:hi|high|low|med)\.wav$", "car_horn"),
    # ---------------------------------------------------------------- vehicles and machines
    ("simutrans-pak64", SIM + r"truck\.wav$", AUTO),
    ("simutrans-pak64", SIM + r"bus\.wav$", "truck"),
    ("micropolis-data", MIC + r"bulldozer\.wav$", AUTO),
    ("simutrans-pak64", SIM + r"(?:steam|diesel)\.wav$", "train"),
    ("simutrans-pak64", SIM + r"planelow\.wav$", "airplane"),
    ("openclonk-data", SND + r"Objects\.ocg/Plane\.ocg/PropellerLoop\.ogg$", "airplane"),
    ("openclonk-data", SND + r"Structures\.ocg/(?:SteamEngine|Pumpjack|FanLoop)\.ogg$", "machine"),
    ("openclonk-data", OC + r"Objects\.ocd/Structures\.ocd/Sawmill\.ocd/EngineLoop\.ogg$", "machine"),
    ("micropolis-data", MIC + r"explosion-(?:hi|high|low)\.wav$", AUTO),
    ("simutrans-pak64", SIM + r"explosion\.wav$", AUTO),
    ("openclonk-data", SND + r"Fire\.ocg/Blast[123]\.wav$", "explosion"),
    # ---------------------------------------------------------------- instruments
    ("scratch", SCR + r"Instruments/Trumpet[12]\.wav$", "trumpet"),
    ("sound-icons", ICO + r"trumpet-[0-9]+\.wav$", "trumpet"),
    ("scratch", SCR + r"Instruments/GuitarStrum\.wav$", "acoustic_guitar"),
    ("scratch", SCR + r"Music Loops/GuitarChords[12]\.mp3$", "acoustic_guitar"),
    ("sound-icons", ICO + r"guitar-[0-9]+\.wav$", "acoustic_guitar"),
    ("sound-icons", ICO + r"cembalo-[0-9]+\.wav$", "harpsichord"),
    ("scratch", SCR + r"Percussion/(?:CymbalCrash|RideCymbal)\.wav$", "cymbal"),
)

# One wording per class that is none of its taxonomy labels (checked by `check_paraphrases`).
PARAPHRASES: dict[str, str] = {
    "dog": "a dog yapping at someone",
    "cat": "a house cat mewling for attention",
    "duck": "a waterfowl honking and quacking on a pond",
    "birds": "small songbirds twittering in the trees",
    "crickets": "the steady chirr of crickets on a summer evening",
    "bat": "a bat fluttering and squeaking in the dark",
    "coughing": "a person clearing their throat and sneezing",
    "laughter": "someone bursting into loud laughs",
    "person_screaming": "a terrified shriek from a person",
    "footsteps": "a person's feet treading along a path",
    "eating": "someone chomping noisily on food",
    "thunder": "a thunderstorm rolling in over the hills",
    "earthquake": "the deep rumble of the earth trembling",
    "fire": "logs crackling in a burning campfire",
    "splash": "something plunging into a pool of water",
    "water_drip": "drops of water falling one by one",
    "falling_rocks": "stones and gravel tumbling down a slope",
    "door": "a door creaking on its hinges and shutting",
    "chest_open": "the hinged lid of a trunk being lifted",
    "glass_break": "a pane of glass smashing to pieces",
    "metal_clank": "a metal bucket being banged",
    "wood_knock": "someone rapping on a wooden plank",
    "mining": "a miner striking stone with a pick",
    "digging": "a spade scraping into dirt",
    "chopping_wood": "a lumberjack splitting logs with an axe",
    "sawing": "a circular saw cutting through a board",
    "drill": "a jackhammer pounding into concrete",
    "coins": "loose change rattling in a till",
    "pouring": "water gushing out of a tap",
    "bell": "a large bell tolling slowly",
    "beep": "a computer emitting short electronic tones",
    "click": "the snap of a light switch being flipped",
    "car_horn": "a driver tooting the horn",
    "truck": "a diesel lorry engine rumbling along",
    "train": "a locomotive chugging along the tracks",
    "airplane": "a propeller aircraft droning overhead",
    "machine": "an engine in a workshop running steadily",
    "explosion": "a bomb going off with a loud bang",
    "trumpet": "a trumpeter playing a fanfare on stage",
    "acoustic_guitar": "someone strumming chords on a six-string guitar",
    "harpsichord": "a few plucked notes on a cembalo",
    "cymbal": "a drummer hitting a crash cymbal hard",
}
