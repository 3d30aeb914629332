"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import errno


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


class DiskFullError(UserError):
    """No space left (or the quota used up) under a folder kdbench writes to: the teacher cache or the
    artifact root. It stops the suite, since every later run would fail the same way; what was written
    is complete or absent, so the next invocation resumes once there is room."""


def out_of_space(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from or while handling, is the system saying no space
    is left: torch reports its own writer's failure with the ``OSError`` as context, not as the error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
