"""Instruments and drums in the taxonomy: General-MIDI instruments and drum kits rendered from
SoundFonts (`INSTRUMENTS`, `DRUMS`, `SOUNDFONTS`) and matched among sampled one-shots."""

from __future__ import annotations

from dataclasses import dataclass

from clipsep_rt.training.taxonomy_rules import w

S = w  # shorthand in the tables


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
