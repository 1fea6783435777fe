"""Exceptions with messages meant for people: what was wrong and what to do."""

import difflib


class TemzooError(Exception):
    """Base class of temzoo's own errors."""


class UnknownNameError(TemzooError, KeyError):
    """A model, dataset or other registered name that does not exist."""

    def __init__(self, kind, name, known, hint=None):
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(str(name), self.known, n=5, cutoff=0.5)
        msg = f"Unknown {kind} {name!r}."
        if close:
            msg += " Did you mean: " + ", ".join(close) + "?"
        msg += f" Known {kind}s: " + (", ".join(self.known) or "none") + "."
        if hint:
            msg += " " + hint
        super().__init__(msg)

    def __str__(self):  # KeyError would otherwise print the repr of the message
        return self.args[0]


class InputSizeError(TemzooError, ValueError):
    """An image size the model's total stride cannot take."""


class BadInputError(TemzooError, ValueError):
    """An input file or array that cannot be used; the message names it."""


class TrainingDivergedError(TemzooError):
    """The training loss became NaN or infinite."""
