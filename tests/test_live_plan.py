"""The live run's sizing (`LivePlan`) and what it reports (`status`, from a `LiveSnapshot`):
pure arithmetic and formatting, no PortAudio, no threads."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from clipsep_rt.errors import OptionError
from clipsep_rt.runtime.live.plan import LivePlan
from clipsep_rt.runtime.live.status import LiveSnapshot, PlaybackCounts, Warnings, live_summary, status_line, summary_line
from clipsep_rt.runtime.stream_stats import StreamSummary

RATE, HOP = 16000, 1024  # a 64 ms hop


def test_block_is_rounded_to_whole_samples_and_buffer_covers_two_steps_and_a_block():
    plan = LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=16.03, step_estimate_s=0.010)
    assert plan.block == 256 and plan.block_ms == pytest.approx(16.0)
    assert plan.buffer_s == pytest.approx(2 * 0.010 + 0.016)
    assert plan.max_backlog == round(plan.buffer_s * RATE) + 2 * 256
    assert plan.input_rate == plan.output_rate == RATE and plan.input_channels == 1
    assert not plan.play and plan.output_channels == 0 and plan.playback_target is None
    with pytest.raises(FrozenInstanceError):
        plan.block = 1


def test_buffer_is_at_least_two_blocks_at_most_a_hop_and_two_blocks_plus_the_resampling_jitter():
    fast = LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=16, step_estimate_s=0.001, resampling_jitter_s=0.019)
    assert fast.buffer_s == pytest.approx(2 * 0.016 + 0.019)
    slow = LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=16, step_estimate_s=1.0)
    assert slow.buffer_s == pytest.approx(0.064 + 2 * 0.016)


def test_playback_sizes_are_at_the_output_rate():
    plan = LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=16, step_estimate_s=0.010, input_rate=48000,
                         input_channels=2, output_rate=44100, output_channels=2, play=True, buffer_ms=50)
    assert plan.buffer_s == pytest.approx(0.05) and plan.input_rate == 48000 and plan.output_rate == 44100
    assert plan.playback_target == round(0.05 * 44100)
    assert plan.playback_high_water == plan.playback_target + 3 * round(0.016 * 44100)
    assert plan.max_backlog == 800 + 2 * 256
    zero = LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=16, step_estimate_s=0.01, play=True, buffer_ms=0)
    assert zero.playback_target == 0 and zero.output_rate == RATE


def test_a_recording_only_plan_keeps_the_model_rate_for_output():
    plan = LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=16, step_estimate_s=0.01, output_rate=48000,
                         output_channels=2, play=False)
    assert plan.output_rate == RATE and plan.output_channels == 0 and plan.playback_high_water is None


@pytest.mark.parametrize(("block_ms", "buffer_ms", "name"), [(0, None, "block_ms"), (-1, 10, "block_ms"),
                                                             (16, -1, "buffer_ms")])
def test_bad_settings_name_the_parameter(block_ms, buffer_ms, name):
    with pytest.raises(OptionError) as info:
        LivePlan.make(rate=RATE, hop_samples=HOP, block_ms=block_ms, step_estimate_s=0.01, buffer_ms=buffer_ms)
    assert info.value.option == name


LATENCY = {"algorithmic_ms": 96.0, "buffer_ms": 40.0, "resampling_ms": 10.0, "device_input_ms": 5.0,
           "device_output_ms": 7.0, "total_ms": 158.0}


def _snapshot(**changes) -> LiveSnapshot:
    values = dict(rate=RATE, consumed=2 * RATE, latency=LATENCY, query_names=("violin", "dog"), rtf_recent_p50=0.25,
                  step_p50_ms=16.0, step_p99_ms=30.0, overruns=1, drops=0, dropped_samples=0,
                  playback=PlaybackCounts(underflows=0), input_device="Mic", input_rate=48000, input_channels=2,
                  output_device="Speakers", output_rate=48000, block_ms=16.0, step_estimate_s=0.015,
                  worker_compute_s=0.5, worker_recent_rtf=0.3, max_backlog_seen=512, max_backlog=1600)
    values.update(changes)
    return LiveSnapshot(**values)


def test_status_line_from_a_snapshot():
    line = status_line(_snapshot())
    assert line == ("live    2.0 s | latency 158 ms (model 96 + buffer 40 + resampling 10 + device 12) | RTF 0.25 | "
                    "overruns 1 | drops 0 | underflows 0 | query: violin, dog")
    assert status_line(_snapshot(playback=None, query_names=())).endswith("drops 0 | query: (unnamed)")


def test_summary_line_says_why_it_stopped_and_the_file_written():
    line = summary_line(_snapshot(stop_reason="interrupted", drops=2, dropped_samples=800, written_file=Path("o.wav")))
    assert line == ("live: stopped (interrupted) after 2.0 s; step p50 16.0 ms, p99 30.0 ms, RTF p50 0.25; "
                    "1 overruns, 2 drops (50 ms dropped), 0 playback underflows; wrote o.wav")
    assert summary_line(_snapshot(playback=None)).endswith("0 drops (0 ms dropped)")


def test_warnings_report_only_what_is_new():
    warnings = Warnings()
    assert warnings.new(_snapshot()) == []
    lines = warnings.new(_snapshot(drops=2, dropped_samples=1600, playback=PlaybackCounts(underflows=3),
                                   input_overflows=1))
    assert lines == [
        "warning: falling behind real time (step p50 16.0 ms, RTF 0.25, 1 overruns): dropped 100 ms of input in "
        "2 drop(s), 2 in all",
        "warning: playback ran dry 3 time(s), 3 in all (silence played): the playback buffer holds 40 ms; "
        "a larger buffer_ms (say 80) avoids it, at that much more latency",
        "warning: the input device lost audio (overflow) 1 time(s), 1 in all",
    ]
    assert warnings.new(_snapshot(drops=3, dropped_samples=2000, playback=PlaybackCounts(underflows=3),
                                  input_overflows=1, output_underflows=1)) == [
        "warning: falling behind real time (step p50 16.0 ms, RTF 0.25, 1 overruns): dropped 25 ms of input in "
        "1 drop(s), 3 in all",
        "warning: the output device ran dry (underflow) 1 time(s), 1 in all",
    ]


def test_the_underflow_advice_at_the_largest_buffer_does_not_ask_for_more():
    at_most = _snapshot(latency={**LATENCY, "buffer_ms": 2000.0}, playback=PlaybackCounts(underflows=1))
    (line,) = Warnings("--buffer-ms").new(at_most)
    assert line.endswith("the playback buffer holds 2000 ms; --buffer-ms is at its largest: the machine cannot keep "
                         "up (try a faster backend or a preset with longer hops)"), line


def test_live_summary_puts_the_live_columns_around_the_stream_summary():
    snap = _snapshot(playback=PlaybackCounts(underflows=1, underflow_samples=480, late_samples=96, trimmed_samples=0),
                     interrupted=True)
    summary = live_summary(snap, StreamSummary(hop_frames=8, lookahead_frames=4, latency_ms=96.0))
    assert summary["hop_frames"] == 8 and summary["latency_ms"] == 96.0 and summary["steps"] == []
    assert summary["duration_s"] == 2.0 and summary["input_samples"] == 2 * RATE and summary["sample_rate"] == RATE
    assert summary["input"] == {"device": "Mic", "rate": 48000, "channels": 2}
    assert summary["output"] == {"device": "Speakers", "rate": 48000}
    assert summary["end_to_end_latency_ms"] == LATENCY and summary["step_estimate_ms"] == pytest.approx(15.0)
    assert summary["worker_load"] == {"mean": 0.25, "recent": 0.3}
    assert summary["max_backlog_ms"] == 32.0 and summary["backlog_limit_ms"] == 100.0
    assert summary["playback"] == {"underflows": 1, "underflow_ms": 10.0, "late_ms": 2.0, "trimmed_ms": 0.0}
    assert summary["interrupted"] and summary["queries"] == ["violin", "dog"]
    recording_only = live_summary(_snapshot(playback=None, output_device=None), StreamSummary())
    assert recording_only["output"] is None and recording_only["playback"] is None
