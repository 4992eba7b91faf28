"""The exceptions batchkit raises.

Every error the library raises is a :class:`BatchkitError`, so a caller can catch one type.
The subclasses exist where a caller (or the CLI's exit code) needs to tell them apart:
bad input is the user's to fix (exit 1), a usage or configuration mistake is exit 2, a
failed API call or network is exit 3, and a wait that ran out of time is exit 5.  No message
here ever contains an API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors is imported by everything; it imports nothing at run time
    from batchkit.batches import Batch


class BatchkitError(Exception):
    """Root of every error batchkit raises."""

    #: The exit code the CLI uses when this error reaches it.
    exit_code: int = 1


class InvalidInputError(BatchkitError):
    """The input (a batch file, a request, metadata) breaks a rule; nothing was sent."""

    exit_code = 1
    #: The validation (a ``batchkit.validate.FileReport``) when a whole file was judged.
    report: object | None = None


class UsageError(BatchkitError):
    """A setting is wrong or missing: an unknown profile, a bad limit, no API key."""

    exit_code = 2


class ApiError(BatchkitError):
    """The API answered with an error.

    ``status`` is the HTTP status; ``code``, ``message`` and ``param`` come from the server's
    error body when it has one.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.message = message


class AuthError(ApiError):
    """401 or 403: the key is missing, wrong or lacks permission."""


class NetworkError(BatchkitError):
    """The server could not be reached, or did not answer in time."""

    exit_code = 3


class WaitTimeout(BatchkitError):
    """Waiting for a batch took longer than allowed; the batch itself is still running.

    ``batch`` is the last state seen, so the caller can report how far it got (the CLI prints
    it).  Exit 5: not a failure of the API (3) nor of the batch (4), and a CI job may well want
    to tell "not done yet" apart from both.
    """

    exit_code = 5

    def __init__(self, message: str, batch: Batch | None = None) -> None:
        super().__init__(message)
        self.batch = batch
