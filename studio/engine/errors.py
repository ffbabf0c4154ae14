"""The studio's own errors: each carries one readable sentence for the user (file, row, field)."""


class StudioError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole message, shown as is."""


class DataError(StudioError):
    """The dataset cannot be read or used as asked."""


class ModelError(StudioError):
    """The base model cannot be found, fetched or loaded safely."""


class JobError(StudioError):
    """A training job cannot start or resume."""
