"""The one writer of audio files: what batch outputs, streamed files and `write_audio_atomic`
write through.

libsndfile reports a failed write as "System error." and loses the reason, so the writer
hands it a file object of its own (soundfile's virtual I/O) that keeps the OS error: disk
full, quota, read-only, ... reach the user as `files.output_error`, one line naming the
output. Every block is checked before it is written: NaN or infinite samples are an error
naming the output, never a file that plays as silence or noise after a run that reported
success.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import soundfile as sf

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import output_error

FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the subtypes that hold samples beyond [-1, 1]
_write = os.write  # what the file object writes with (a name of this module's, for the tests to replace)


class AudioWriter:
    """An audio file being written: `write` (n,) or (n, channels) float blocks, then `close`
    (or use it as a context manager, which closes it; after an error, quietly).

    `path` is the file written (usually `atomic_output`'s temporary); `shown_as` the output
    its errors name (default `path`). Integer subtypes get the samples clipped to [-1, 1].
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str, format: str,
                 shown_as: str | os.PathLike | None = None):
        self.shown_as = Path(shown_as if shown_as is not None else path)
        self.subtype = subtype.upper()
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise output_error(self.shown_as, exc) from None
        self._file = _KeptErrorFile(descriptor)
        self._sound: sf.SoundFile | None = None
        try:
            with self._reporting_os_errors():  # the header is written now
                self._sound = sf.SoundFile(self._file, "w", samplerate=sample_rate, channels=channels,
                                           subtype=self.subtype, format=format.upper())
        except BaseException:
            self._abandon()
            raise

    def write(self, frames: np.ndarray) -> None:
        """Append `frames`; ClipsepError naming the output if they hold NaN/Inf or the OS refuses them."""
        frames = np.asarray(frames, dtype=np.float32)
        if not np.isfinite(frames).all():
            raise ClipsepError(f"{self.shown_as}: refusing to write NaN or infinite samples "
                               "(the model's weights may be damaged: check the checkpoint)")
        if self.subtype not in FLOAT_SUBTYPES:
            frames = np.clip(frames, -1.0, 1.0)
        with self._reporting_os_errors():
            self._sound.write(frames)

    def close(self) -> None:
        """Finish the file (its header, a FLAC's last frame); ClipsepError if the OS refuses."""
        if self._file.closed:
            return
        try:
            with self._reporting_os_errors():
                if self._sound is not None:
                    self._sound.close()
        finally:
            self._file.close()
        self._raise_kept_error()  # closing the descriptor can report a late error (network file systems)

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self._abandon()

    def _abandon(self) -> None:
        """Close after an error, which is the one to report."""
        with suppress(Exception):
            self.close()

    @contextmanager
    def _reporting_os_errors(self) -> Iterator[None]:
        """Raise what the callbacks kept when the body ends, in place of what soundfile made of it
        (LibsndfileError "System error.", or its assertion on the frames written): an interrupt
        raised inside them first, then the OS error."""
        try:
            yield
        except BaseException:
            self._raise_kept_error()
            raise
        self._raise_kept_error()

    def _raise_kept_error(self) -> None:
        interrupt, self._file.interrupt = self._file.interrupt, None  # raised once: closing after it may write
        if interrupt is not None:
            raise interrupt from None
        if self._file.error is not None:
            raise output_error(self.shown_as, self._file.error) from None


class _KeptErrorFile:
    """The file object libsndfile writes through (write, seek, tell: it reads nothing in write
    mode): plain descriptor I/O that keeps what it raises, and reports a short write (or a
    position of -1) to libsndfile, instead of raising inside its callback, where cffi would
    print it and drop it: the first OS error, and the first anything else (the KeyboardInterrupt
    or Terminated that a signal handler raises there), which stops the writing."""

    def __init__(self, descriptor: int):
        self.descriptor: int | None = descriptor
        self.error: OSError | None = None
        self.interrupt: BaseException | None = None

    def write(self, data: bytes) -> int:
        view, done = memoryview(data), 0
        try:
            while done < len(view) and self.interrupt is None:
                done += _write(self.descriptor, view[done:])
        except BaseException as exc:
            self._keep(exc)
        return done

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            return os.lseek(self.descriptor, offset, whence)
        except BaseException as exc:
            self._keep(exc)
            return -1

    def tell(self) -> int:
        return self.seek(0, os.SEEK_CUR)

    def _keep(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            self.error = self.error or exc
        else:
            self.interrupt = self.interrupt or exc

    @property
    def closed(self) -> bool:
        return self.descriptor is None

    def close(self) -> None:
        descriptor, self.descriptor = self.descriptor, None
        try:
            os.close(descriptor)
        except OSError as exc:
            self.error = self.error or exc
