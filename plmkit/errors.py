"""The one error type for user mistakes.

Library code raises `PlmkitError` for anything the user can fix (a missing file, a bad flag
value, a stage directory that does not fit); the CLI renders it as one red line on stderr and
exits 1. Internal invariants use `assert`, and their failures keep their traceback.
"""


class PlmkitError(Exception):
    """A user mistake: the message names the file or flag and says how to fix it.

    >>> str(PlmkitError("--vocab-size must be positive, got -3", hint="pass e.g. --vocab-size 8000"))
    '--vocab-size must be positive, got -3 (pass e.g. --vocab-size 8000)'
    """

    def __init__(self, message: str, hint: str | None = None):
        self.message = " ".join(str(message).split())  # always one line
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.message if not self.hint else f"{self.message} ({self.hint})")


def check(condition: bool, message: str, hint: str | None = None) -> None:
    """Raise `PlmkitError(message, hint)` unless `condition` holds."""
    if not condition:
        raise PlmkitError(message, hint)
