"""User-facing errors: one line that names the file or value at fault."""


class ClipsepError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    The message is a single line that names the offending file or value and, where
    possible, says what to do about it.
    """


class OptionError(ClipsepError):
    """A setting the user chose is out of range or does not combine with another.

    `option` is the library's parameter name (e.g. "hop_frames"), never a command-line flag:
    the CLI maps it to its flag (`--hop-frames`) when it reports the error. The message is
    the reason, without the name ("must be at least 1, got 0").
    """

    def __init__(self, option: str, reason: str):
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason
