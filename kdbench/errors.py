"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user gave us (a suite file, a name, a missing data file).

    The message must say what is wrong and where, in one line; no traceback is shown.
    """


class SuiteError(UserError):
    """A suite file that does not validate."""


class DatasetMissingError(UserError):
    """A dataset file that is absent or does not match its published checksum."""


class PluginError(UserError):
    """A plugin that cannot be loaded, or two plugins that claim one name."""


class IncompatibleCombination(Exception):
    """Raised by a spec's check to say a combination cannot run; its message is the reason.

    Not a UserError: the runner records the combination as skipped (n/a) and goes on.
    """


class Stopped(Exception):
    """A run stopped on purpose by whoever watches its epochs (a pruned tuning trial): recorded as
    such, not as a failure."""
