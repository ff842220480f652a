"""The project's user errors: one family, one line each, printed by `rstn` without a traceback.

A user error is a mistake the user can fix: a bad setting, a missing or corrupt file, a run
folder made with other settings. Its message is one line that names the key or the file, the
value that came, what is allowed and how to fix it. `rstn` prints it as
``rstn: error: <message>`` and exits with status 2; every other exception is a bug and keeps
its traceback (``rstn --debug`` shows tracebacks for user errors too).

    RstnError            the base (catch this one)
      ConfigError        a setting: wrong type, out of range, unknown key (also a ValueError)
      RunFolderError     a run folder or folds file made with other settings (a FileExistsError)
      FileFormatError    a file that cannot be parsed: bad JSON/YAML, a corrupt checkpoint
      DataError          bad input data (rstn_core.data.errors; also a ValueError)
"""
from __future__ import annotations

__all__ = ["RstnError", "ConfigError", "RunFolderError", "FileFormatError", "one_line"]


def one_line(message) -> str:
    """The message with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(message).split())


class RstnError(Exception):
    """Base of every user error: the message is one line naming what is wrong and the fix."""

    def __init__(self, message: str = ""):
        super().__init__(one_line(message))


class ConfigError(RstnError, ValueError):
    """A setting that is unknown, of the wrong type or out of range (a ValueError too), e.g.
    ``"train.zoom='abc': expected an integer >= 1; e.g. --set train.zoom=2."``"""


class RunFolderError(RstnError, FileExistsError):
    """A run folder (or a folds.json) made with other settings (a FileExistsError too)."""


class FileFormatError(RstnError, ValueError):
    """A file that exists but cannot be read: malformed JSON/YAML, a truncated checkpoint
    (a ValueError too); the message names the file."""
