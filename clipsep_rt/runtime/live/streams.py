"""The PortAudio streams of a live run: opened at the devices' native rates, started, and
stopped and closed on a helper thread within a time limit (a sound server that stops
answering would otherwise hold the caller in PortAudio's stop for good)."""

from __future__ import annotations

import threading

from clipsep_rt.errors import ClipsepError

DEVICE_STOP_TIMEOUT_S = 5.0  # the most the devices get to stop and close once the files are done


def portaudio_call(what: str, call):
    """Run a PortAudio call; its errors become a ClipsepError saying what failed."""
    try:
        return call()
    except Exception as exc:
        if type(exc).__name__ != "PortAudioError":
            raise
        raise ClipsepError(f"cannot {what}: {exc}") from None


class DeviceStreams:
    """The streams opened through `sd` (the sounddevice module) with PortAudio's `latency`
    setting ("low", "high" or seconds), in the order opened."""

    def __init__(self, sd, latency: str | float = "low"):
        self._sd = sd
        self.latency = latency
        self.streams: list = []

    def open(self, kind: str, device: tuple[int, str, int], channels: int, callback):
        """Open (not start) an "input" or "output" stream on `device` (id, name, native rate)."""
        index, name, rate = device
        opener = self._sd.InputStream if kind == "input" else self._sd.OutputStream
        stream = portaudio_call(f"open the {kind} device {name!r} at {rate} Hz", lambda: opener(
            device=index, samplerate=rate, channels=channels, dtype="float32", blocksize=0,
            latency=self.latency, callback=callback))
        self.streams.append(stream)
        return stream

    def start(self) -> None:
        for stream in self.streams:
            portaudio_call("start the audio streams", stream.start)

    @property
    def active(self) -> bool:
        """All the streams still run (true when there are none)."""
        return all(stream.active for stream in self.streams)

    def stop(self, timeout_s: float = DEVICE_STOP_TIMEOUT_S) -> bool:
        """Stop and close the streams on a helper thread, waiting at most `timeout_s`: false
        when they did not stop in that time (best effort otherwise: errors are ignored)."""
        if not self.streams:
            return True

        def stop_all() -> None:
            for stream in reversed(self.streams):  # the input (opened last) first
                try:
                    if isinstance(stream, self._sd.OutputStream):
                        stream.abort()  # no need to play out what is queued
                    else:
                        stream.stop()
                    stream.close()
                except Exception:  # noqa: BLE001 - stopping is best effort: the files are done
                    pass

        stopper = threading.Thread(target=stop_all, name="clipsep-live-stop", daemon=True)
        stopper.start()
        stopper.join(timeout_s)
        return not stopper.is_alive()
