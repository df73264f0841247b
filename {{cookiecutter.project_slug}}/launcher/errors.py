"""The one error type the launcher raises for anything the user can fix."""

from __future__ import annotations


class LaunchError(ValueError):
    """A setting, file or AWS resource is wrong; the message names it, shows the value and says what to do.

    Raised before anything is submitted, so a LaunchError never leaves a half-started job behind.
    """


class JobFailed(LaunchError):
    """A job ran and failed (``--local-job``): the message has its failure reason and log file."""
