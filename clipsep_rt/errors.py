"""User-facing errors: one line that names the file or value at fault."""


class ClipsepError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    The message is a single line that names the offending file or value and, where
    possible, says what to do about it.
    """
