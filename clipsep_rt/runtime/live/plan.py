"""How a live run is sized, before anything is opened: the worker's block, the playback jitter
buffer and the worker's backlog limit, from the devices' rates and channels, the separator's
hop and a measured network step. Pure arithmetic (no PortAudio, no threads): `LivePlan.make`."""

from __future__ import annotations

from dataclasses import dataclass

from clipsep_rt.errors import OptionError


MAX_BUFFER_MS = 2000.0  # the playback buffer adds its size to the latency: seconds of it would be no live run


def check_live_settings(block_ms: float, buffer_ms: float | None = None) -> None:
    """OptionError for a block that is not positive or a playback buffer outside 0..MAX_BUFFER_MS."""
    if not block_ms > 0:
        raise OptionError("block_ms", f"must be positive, got {block_ms}")
    if buffer_ms is not None and not 0 <= buffer_ms <= MAX_BUFFER_MS:
        raise OptionError("buffer_ms", f"must be 0 to {MAX_BUFFER_MS:.0f} ms (it adds its size to the latency), "
                                       f"got {buffer_ms:g}")


@dataclass(frozen=True)
class LivePlan:
    """The sizes of a live run. Rates in Hz; `block` and `max_backlog` in model-rate samples;
    the playback sizes in output-rate samples (None without playback).

    buffer_s: the playback jitter buffer: `buffer_ms` when given, else twice the measured
    step plus a block (at least two blocks, at most a hop plus two blocks), plus the
    resamplers' burstiness (`resampling_jitter_s`)."""

    rate: int  # the model's
    block: int  # the most input the worker hands the separator at once
    input_rate: int
    input_channels: int  # opened and averaged
    output_rate: int  # the model rate when not playing
    output_channels: int  # 0 when not playing
    play: bool
    step_estimate_s: float  # a measured network step
    resampling_jitter_s: float
    buffer_s: float
    max_backlog: int  # model-rate input the worker may fall behind before it drops

    @classmethod
    def make(
        cls,
        *,
        rate: int,
        hop_samples: int,
        block_ms: float,
        step_estimate_s: float,
        resampling_jitter_s: float = 0.0,
        input_rate: int | None = None,
        input_channels: int = 1,
        output_rate: int | None = None,
        output_channels: int = 0,
        play: bool = False,
        buffer_ms: float | None = None,
    ) -> LivePlan:
        check_live_settings(block_ms, buffer_ms)
        block = max(1, round(block_ms * rate / 1000))
        block_s, hop_s = block / rate, hop_samples / rate
        if buffer_ms is None:
            buffer_s = min(max(2 * step_estimate_s + block_s, 2 * block_s), hop_s + 2 * block_s)
            buffer_s += resampling_jitter_s
        else:
            buffer_s = buffer_ms / 1000
        return cls(
            rate=rate, block=block, input_rate=input_rate or rate, input_channels=input_channels,
            output_rate=(output_rate or rate) if play else rate, output_channels=output_channels if play else 0,
            play=play, step_estimate_s=step_estimate_s, resampling_jitter_s=resampling_jitter_s, buffer_s=buffer_s,
            max_backlog=round(buffer_s * rate) + 2 * block,
        )

    @property
    def block_ms(self) -> float:
        """The block as it was rounded to whole samples, in ms."""
        return 1000 * self.block / self.rate

    @property
    def playback_target(self) -> int | None:
        """Output-rate samples waiting before playback begins (the jitter buffer)."""
        return round(self.buffer_s * self.output_rate) if self.play else None

    @property
    def playback_high_water(self) -> int | None:
        """Output-rate samples waiting beyond which the buffer is trimmed (clock drift): the
        target plus three blocks."""
        if not self.play:
            return None
        return self.playback_target + 3 * round(self.block / self.rate * self.output_rate)
