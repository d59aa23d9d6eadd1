"""Audio devices through PortAudio (sounddevice): listing them and picking one by id or name."""

from __future__ import annotations

from types import ModuleType

from clipsep_rt.errors import ClipsepError

PORTAUDIO_HINT = "pip install sounddevice; apt install libportaudio2"
_KINDS = ("input", "output")


def import_sounddevice() -> ModuleType:
    """Import sounddevice (which loads PortAudio), or explain how to install both."""
    try:
        import sounddevice
    except ImportError as exc:  # the package is missing
        raise ClipsepError(f"live audio needs the sounddevice package and PortAudio ({exc}): {PORTAUDIO_HINT}") from None
    except OSError as exc:  # sounddevice without the PortAudio library
        raise ClipsepError(f"live audio needs the PortAudio library ({exc}): {PORTAUDIO_HINT}") from None
    return sounddevice


def _defaults(sd: ModuleType) -> tuple[int, int]:
    """(default input, default output) device ids, -1 where there is none."""
    ids = []
    for kind in _KINDS:
        try:
            ids.append(int(sd.query_devices(kind=kind)["index"]))
        except Exception:  # noqa: BLE001 - no default: PortAudioError or ValueError, by version
            ids.append(-1)
    return ids[0], ids[1]


def list_devices() -> str:
    """A table of the audio devices: id, name, host API, input/output channels, default rate."""
    sd = import_sounddevice()
    devices, apis = sd.query_devices(), sd.query_hostapis()
    default_in, default_out = _defaults(sd)
    rows = [("", "id", "name", "host API", "in", "out", "rate")]
    for device in devices:
        index = device["index"]
        mark = ("in" if index == default_in else "") + ("+" if index == default_in == default_out else "")
        mark += "out" if index == default_out else ""
        rows.append((
            mark, str(index), device["name"], apis[device["hostapi"]]["name"],
            str(device["max_input_channels"]), str(device["max_output_channels"]),
            f"{device['default_samplerate']:.0f}",
        ))
    if len(rows) == 1:
        return "no audio devices found (PortAudio sees none: is a sound server or card available?)"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 4, 5, 6}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("(first column: the default input / output device; pick others with an id or part of a name)")
    return "\n".join(lines)


def find_audio_device(spec: str | int | None, kind: str) -> tuple[int, str, int]:
    """An input or output device from an id, (part of) a name or None (the default):
    (id, name, native sample rate). ClipsepError, listing the candidates, when there is no
    such device or the name fits several."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    sd = import_sounddevice()
    channels = f"max_{kind}_channels"
    devices, apis = sd.query_devices(), sd.query_hostapis()
    usable = [d for d in devices if d[channels] > 0]

    def label(device) -> str:
        return f"{device['index']}: {device['name']} ({apis[device['hostapi']]['name']})"

    def listing(candidates) -> str:
        return "; ".join(label(d) for d in candidates) if candidates else "none"

    def found(device) -> tuple[int, str, int]:
        return int(device["index"]), str(device["name"]), round(device["default_samplerate"])

    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "default")):
        index = _defaults(sd)[_KINDS.index(kind)]
        if index < 0:
            raise ClipsepError(f"there is no default {kind} device; choose one by id or name from: {listing(usable)}")
        return found(devices[index])
    text = str(spec).strip()
    if isinstance(spec, int) or text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(devices):
            raise ClipsepError(f"{kind} device {index}: no such device; {kind} devices: {listing(usable)}")
        if devices[index][channels] < 1:
            raise ClipsepError(f"{kind} device {label(devices[index])} has no {kind} channels; {kind} devices: {listing(usable)}")
        return found(devices[index])
    wanted = text.lower()
    exact = [d for d in usable if d["name"].lower() == wanted]
    matches = exact or [d for d in usable if wanted in d["name"].lower()] or [d for d in usable if wanted in label(d).lower()]
    if len(matches) == 1:
        return found(matches[0])
    if not matches:
        raise ClipsepError(f"{kind} device {text!r}: no {kind} device has that in its name; {kind} devices: {listing(usable)}")
    raise ClipsepError(f"{kind} device {text!r} is ambiguous, it fits {listing(matches)}: give the id")
