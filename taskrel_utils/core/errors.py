"""Errors of the kit: every one is a ``ValueError`` whose message says what is wrong and what to do."""


class TaskrelError(ValueError):
    """Base class of the kit's errors (a ``ValueError``, so callers may catch either)."""


class UnknownNameError(TaskrelError):
    """An unknown task, encoder, profile or parameter name; the message lists the valid names."""

    def __init__(self, kind: str, name, valid, of: str = ""):
        valid = sorted(valid)
        where = f" of {of}" if of else ""
        super().__init__(f"unknown {kind} {name!r}{where}; valid {kind}s{where} are: {', '.join(map(str, valid))}")
        self.kind, self.name, self.valid = kind, name, valid


class MissingDataError(TaskrelError):
    """A dataset folder or bundle file is missing; the message names the variable or command to fix it."""


class CorruptedFileError(TaskrelError):
    """A file failed its checksum; the message names the file and how to rebuild it."""


class OfflineError(TaskrelError):
    """A download was needed and is impossible; the message says how to provide the artefact locally."""
