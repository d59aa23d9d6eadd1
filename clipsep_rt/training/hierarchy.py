"""The class hierarchy of the corpus: which classes name the same sound, so never mix or negate them.

Two kinds of relation, both symmetric for the question "may these two be in one mixture":

- **parent > children** (`PARENTS`): "music" contains every instrument and drum, "string
  ensemble" contains violin, "radio voice" contains a man or a woman speaking. A parent and
  any of its descendants overlap (ancestry is followed through several levels: music > brass
  section > trumpet).
- **confusable groups** (`CONFUSABLE`): classes that name one sound from different sides
  (a scream, a death cry and a groan; a river and a waterfall); every pair in a group overlaps.

`classes_overlap(a, b)` is what the training sampler, the dev set and the negative queries ask:
a mixture never holds two overlapping classes, and a negative query never names a class that
overlaps one present in the mixture. It takes class names ("violin") or the corpus's label
column ("violin|a violin playing|a bowed violin", what the sampler groups clips by). Classes the
tables do not know (a video's `source:` key, a class added later) overlap only themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from clipsep_rt.training.taxonomy import all_class_labels
from clipsep_rt.training.taxonomy_instruments import DRUMS, INSTRUMENTS

_INSTRUMENTS = tuple(i.name for i in INSTRUMENTS)
_DRUMS = tuple(d.name for d in DRUMS)

# parent -> children (a child may have several parents)
PARENTS: dict[str, tuple[str, ...]] = {
    "music": (*_INSTRUMENTS, *_DRUMS, "drum_roll", "fanfare", "failure_jingle", "horn_signal"),
    "string_ensemble": ("violin", "viola", "cello", "double_bass"),
    "brass_section": ("trumpet", "trombone", "tuba", "french_horn", "fanfare", "horn_signal"),
    "drum_roll": ("tom_drum", "snare_drum", "kick_drum", "bongo", "timpani", "cymbal"),
    "radio_voice": ("man_speaking", "woman_speaking"),
    "crowd": ("man_speaking", "woman_speaking", "laughter", "cheering", "coughing"),
    "cheering": ("hand_clap", "whistle"),
    "forest_ambience": ("birds", "wind", "crickets", "frog", "bees", "crow", "hawk"),
    "countryside": ("birds", "crickets", "cow", "chicken", "sheep", "pig", "horse", "bees", "duck", "dog"),
    "night_ambience": ("crickets", "frog", "wolf", "bat"),
    "cave_ambience": ("water_drip", "wind", "bat"),
    "traffic": ("car_engine", "car_horn", "truck", "motorcycle", "tire_skid"),
    "fireworks": ("explosion",),
}

CONFUSABLE: tuple[tuple[str, ...], ...] = (
    ("person_screaming", "death_cry", "pain_groan", "war_cry"),
    ("monster_growl", "zombie", "dragon", "goblin", "ghost", "bear", "wolf"),
    ("river", "waterfall", "sea_waves"),
    ("thunder", "earthquake"),
    ("explosion", "cannon", "rocket_launch"),
    ("laser", "magic_spell", "electricity"),
    ("car_engine", "truck", "motorcycle"),
    ("airplane", "jet_engine", "helicopter", "spaceship"),
    ("machine", "drill", "robot"),
    ("bell", "tubular_bells"),
    ("church_organ", "electric_organ"),
    ("synth_lead", "synth_pad"),
    ("man_speaking", "cartoon_voice"),
    ("woman_speaking", "cartoon_voice"),
    ("click", "keyboard_typing"),  # corpus v3: key clicks are clicks
)


@functools.lru_cache(maxsize=1)
def _names_by_label() -> dict[str, str]:
    return {label: name for name, label in all_class_labels().items()}


def class_name(key: str) -> str:
    """The class name of a taxonomy label column ("violin|a violin playing|..."); other keys as they are."""
    return _names_by_label().get(key, key)


@functools.lru_cache(maxsize=None)
def ancestors(name: str) -> frozenset[str]:
    """Every class above `name` in `PARENTS` (not `name` itself)."""
    found: set[str] = set()
    frontier = [name]
    while frontier:
        child = frontier.pop()
        for parent, children in PARENTS.items():
            if child in children and parent not in found:
                found.add(parent)
                frontier.append(parent)
    return frozenset(found)


@functools.lru_cache(maxsize=None)
def _confusable_with(name: str) -> frozenset[str]:
    return frozenset(other for group in CONFUSABLE if name in group for other in group)


def classes_overlap(a: str, b: str) -> bool:
    """Whether classes `a` and `b` (names or label columns) may name one sound: equal, one an
    ancestor of the other, or both in a confusable group."""
    a, b = class_name(a), class_name(b)
    return a == b or a in ancestors(b) or b in ancestors(a) or b in _confusable_with(a)


def overlaps_any(name: str, present: Iterable[str]) -> bool:
    """Whether `name` overlaps any of the classes in `present`."""
    return any(classes_overlap(name, other) for other in present)
