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


_WRITE_ERRNOS = {"ENOSPC": "free some space", "EDQUOT": "free some space or raise the quota",
                 "EROFS": "choose a writable location", "EACCES": "choose a writable location",
                 "EPERM": "choose a writable location", "ENOTDIR": "choose a path whose parents are folders"}


class writing_to:  # noqa: N801 (used as a `with` statement, reads like one)
    """Turn an OSError while writing an output (disk full, read-only, …) into a one-line PlmkitError.

    >>> with writing_to("--out", "DATA"): ...  # doctest: +SKIP
    """

    def __init__(self, flag: str, path: object):
        self.flag, self.path = flag, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        import errno

        if isinstance(exc, OSError) and errno.errorcode.get(exc.errno or 0) in _WRITE_ERRNOS:
            fix = _WRITE_ERRNOS[errno.errorcode[exc.errno]]
            where = f" ({exc.filename})" if exc.filename else ""
            raise PlmkitError(f"writing {self.flag} {self.path} failed: {exc.strerror}{where}",
                              hint=f"{fix}, then rerun the same command") from exc
        return False
