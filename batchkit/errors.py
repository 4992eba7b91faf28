"""The exceptions batchkit raises.

Every error the library raises is a :class:`BatchkitError`, so a caller can catch one type.
The subclasses exist where a caller (or the CLI's exit code) needs to tell them apart:
bad input is the user's to fix (exit 1), a usage or configuration mistake is exit 2, and a
failed API call or network is exit 3.  No message here ever contains an API key.
"""

from __future__ import annotations


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

    ``batch`` is the last state seen (a :class:`batchkit.client.Batch`), so the caller can
    report how far it got.  Exit 3, as for other "the service did not deliver in time" cases.
    """

    exit_code = 3

    def __init__(self, message: str, batch: object = None) -> None:
        super().__init__(message)
        self.batch = batch
