"""The studio's own errors: each carries one readable sentence for the user (file, row, field)."""


class StudioError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole message, shown as is."""


class DataError(StudioError):
    """The dataset cannot be read or used as asked."""


class FormatUnknown(DataError):
    """No format can be told from the file's columns: ``columns`` lets a page offer them for a mapping."""

    def __init__(self, message: str, columns: list[str] | None = None):
        super().__init__(message)
        self.columns = list(columns or [])

    def __reduce__(self):  # crosses a process boundary (a public data check runs in a child) with its columns
        return type(self), (str(self), self.columns)


class ModelError(StudioError):
    """The base model cannot be found, fetched or loaded safely."""


class JobError(StudioError):
    """A training job cannot start or resume."""
