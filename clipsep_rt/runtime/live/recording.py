"""A live recording: a .wav or .flac file written as the run goes, that outlives the failures
around it.

The file is written to a temporary beside its name (`io.files.atomic_output`) and moved into
place when the run ends, however it ends short of kill -9: normally, on a stop signal, when
the device is lost, and when the separation or the process fails (the runner keeps what was
recorded up to then).

The disk filling up stops the recording, not the run: before each write the recording
checks that its disk keeps `reserve_bytes` free (what completing the file needs: the
separator's tail, the encoder's last block and the header, with room to spare), and a write
that fails all the same (another writer took the space, an I/O error: `io.audio_writer`
reports the OS error) stops it too. Either way the file is completed with what was written
before: a valid file, shorter than the run. `failure` says so in one line that names the
file; the runner reports it and decides what the run does next (see `runner`).

A file that took the recording's name during the run (without overwrite) is kept: the
recording is then moved to the first free name `take.1.wav`, `take.2.wav`, ... (`path`
becomes that), and `failure` says so.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.audio_formats import AUDIO_OUTPUT_SUBTYPES
from clipsep_rt.io.audio_writer import AudioWriter
from clipsep_rt.io.files import atomic_output

CONTAINER_RESERVE_BYTES = 64 * 1024  # the header and the encoder's last block, with room to spare


class Recording:
    """`channels` channels at `rate` into `path` (.wav float or .flac), from `write` calls.

    `reserve_bytes`: the free space the recording leaves on its disk (default: `tail_samples`
    plus one second of audio, and `CONTAINER_RESERVE_BYTES`). Not thread-safe: one thread
    writes; `close` after it has stopped."""

    def __init__(self, path: Path, rate: int, channels: int, *, overwrite: bool = False, tail_samples: int = 0,
                 reserve_bytes: int | None = None):
        self.path = Path(path)
        self.rate = rate
        self.channels = channels
        self.overwrite = overwrite
        bytes_per_second = 4 * channels * rate  # float WAV; FLAC is smaller
        self.reserve_bytes = (reserve_bytes if reserve_bytes is not None
                              else bytes_per_second * (tail_samples + rate) // rate + CONTAINER_RESERVE_BYTES)
        self.frames = 0  # written so far
        self.failure: str | None = None  # why the recording stopped early, one line naming the file
        self.closed = False
        self._output = atomic_output(self.path, overwrite)
        self._temp = self._output.__enter__()
        try:
            self._writer = AudioWriter(self._temp, rate, channels, AUDIO_OUTPUT_SUBTYPES[self.path.suffix.lower()],
                                       self.path.suffix[1:], shown_as=self.path)
        except BaseException as exc:
            self._output.__exit__(type(exc), exc, exc.__traceback__)
            raise

    @property
    def seconds(self) -> float:
        """Audio written so far, in seconds."""
        return self.frames / self.rate

    def write(self, samples: np.ndarray) -> None:
        """Append (m, channels) samples ((m,) for one channel); nothing once the recording has
        stopped (`failure`)."""
        if self.failure is not None:
            return
        free = shutil.disk_usage(self.path.parent).free
        if free < self.reserve_bytes:
            self._stop(f"{self.path}: disk full ({free // 1024} KiB left; {self.reserve_bytes // 1024} KiB are kept "
                       "to complete the file)")
            return
        try:
            self._writer.write(samples)
        except ClipsepError as exc:  # the OS error in words, naming the file (disk full...), or NaN samples refused
            self._stop(str(exc))
            return
        self.frames += len(samples)

    def _stop(self, why: str) -> None:
        """`why`: one line naming the file."""
        self.failure = f"{why}; the recording stopped at {self.seconds:.1f} s and keeps what was recorded until then"

    def close(self, keep: bool = True) -> bool:
        """Complete the file and move it into place (`keep`), or remove it; returns whether it
        was kept. A file that cannot be completed (it does not read back as holding what was
        written) is removed, and `failure` says so."""
        if self.closed:
            return False
        self.closed = True
        try:
            self._writer.close()
        except ClipsepError as exc:  # after a failed write, that write's error again: the file may be fine
            self.failure = self.failure or str(exc)
        if keep and not self._reads_back():
            self.failure = f"{self.path}: the recording could not be completed, so it was removed" + (
                f" ({self.failure})" if self.failure else "")
            keep = False
        if not keep:
            self._discard_temporary()
            return False
        if not self.overwrite and os.path.lexists(self.path):  # another file took the name during the run
            self._keep_under_another_name()
            return True
        self._output.__exit__(None, None, None)
        return True

    def _discard_temporary(self) -> None:
        error = RuntimeError("recording discarded")
        self._output.__exit__(RuntimeError, error, None)  # removes the temporary

    def _keep_under_another_name(self) -> None:
        """Move the recording to the first free name `stem.N.suffix`, never over a file."""
        taken = self.path
        for number in itertools.count(1):
            self.path = taken.with_name(f"{taken.stem}.{number}{taken.suffix}")
            try:
                os.link(self._temp, self.path)  # fails on an existing name, atomically
                break
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links
                if not os.path.lexists(self.path):
                    os.rename(self._temp, self.path)
                    break
        self._discard_temporary()
        self.failure = (f"{taken}: another file took this name during the run; the recording is kept as {self.path}"
                        + (f" ({self.failure})" if self.failure else ""))

    def _reads_back(self) -> bool:
        """The file reads as holding every frame written, and at most the block that failed more."""
        try:
            frames = sf.info(self._temp).frames
        except (OSError, sf.LibsndfileError, RuntimeError):
            return False
        return self.frames <= frames <= self.frames + self.rate


def close_all(recordings: list[Recording], clean: bool) -> tuple[list[Recording], BaseException | None]:
    """Close every recording, each on its own (one whose completion raises leaves the others
    to complete), keeping all after a `clean` run, else those that hold something: (the
    recordings kept, the first error raised, or None)."""
    kept, error = [], None
    for recording in recordings:
        try:
            if recording.close(keep=clean or recording.frames > 0):
                kept.append(recording)
        except BaseException as exc:  # noqa: BLE001 - returned, once every recording is closed
            error = error or exc
    return kept, error
