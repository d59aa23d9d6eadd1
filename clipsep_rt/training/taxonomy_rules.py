"""The taxonomy's sound-effect keyword rules (`RULES`, tried in order on a file's name part),
the music rule, and the categories the rules fall in (`CATEGORY_RANGES`). ``w(...)`` builds a
word pattern: the word not preceded by a letter, so "bark" does not match "disembark"."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clipsep_rt.training.taxonomy_speech import SPEECH_PACKAGES


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


MUSIC = Rule("music", "music|a piece of music playing|background music", "")

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


CATEGORY_RANGES = (  # first rule of each category in RULES order
    ("cow", "animals"), ("footsteps", "people (non-speech)"), ("zombie", "creatures"), ("waterfall", "nature"),
    ("hammering", "tools and household"), ("sword_clash", "weapons and combat"), ("car_engine", "vehicles and machines"),
    ("ball_bounce", "sports, toys and signals"),
)
