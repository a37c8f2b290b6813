"""The one error type the CLI turns into a message instead of a traceback."""


class RtmError(Exception):
    """Something the user can fix: the message says what was wrong and what to do."""
