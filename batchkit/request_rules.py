"""The rules one request line is checked against, given what the lines before it left.

:class:`RequestRules` is the half of :class:`~batchkit.validate.Validator` that judges a
parsed request: the ordinary-request fast path (:meth:`~RequestRules._passes_fast_path`) and
the full checks that write every message (:meth:`~RequestRules._check`: the four keys, the
custom_id, the method, the url and the body).  The other half, in :mod:`batchkit.validate`,
feeds lines, blocks and parts to it and keeps the totals.  The rules read and update the
state declared below (the batch's endpoint and model, the ids used), which the validator owns
and sets up.
"""

from __future__ import annotations

from typing import Any

from batchkit import schemas
from batchkit.endpoints import ENDPOINTS, Endpoint, named_endpoint, wrong_url_message
from batchkit.issues import Issue
from batchkit.limits import Limits
from batchkit.request_warnings import (
    body_warnings,
    custom_id_warnings,
    low_token_limits,
    misspelled_keys,
)

REQUIRED_KEYS = ("custom_id", "method", "url", "body")
_REQUIRED_SET = frozenset(REQUIRED_KEYS)


class RequestRules:
    """The checks of one parsed request (a mixin of :class:`~batchkit.validate.Validator`)."""

    #: The batch endpoint, once known: from ``--endpoint`` or the first known url.
    _endpoint: Endpoint | None
    #: The line whose url set ``_endpoint`` (``None``: ``--endpoint`` did, or none yet).
    _endpoint_line: int | None
    #: Until a known url is seen: the endpoint the first near miss (``/chat/completions``)
    #: stands for, so that the bodies before it are still checked against their schema.
    _guess: Endpoint | None
    #: The batch's model and the line that set it.
    _model: str | None
    _model_line: int
    #: Each custom_id used, with the line that first used it.
    _ids: dict[str, int]
    _embedding_inputs: int
    limits: Limits
    #: Off only in the tests that compare the fast path with the full checks.
    fast_path: bool

    @property
    def endpoint(self) -> str | None:
        """The batch endpoint's url (or the near miss standing in for it), once known."""
        known = self._endpoint or self._guess
        return known.url if known else None

    def _passes_fast_path(self, record: dict[str, Any], line: int) -> bool:
        """True when ``record`` is an ordinary valid request; it is then fully accounted for.

        Most lines of most files are valid, and this answers for them with a few comparisons
        and one schema call.  It only ever says "nothing to report": anything unusual
        (a warning, a first line, any doubt) returns False and the full checks below run,
        which produce the messages.  tests/test_validate_fuzz.py checks the two agree.
        """
        endpoint = self._endpoint  # False before the endpoint is known: the full checks set it
        if endpoint is None or record.keys() != _REQUIRED_SET:
            return False
        body, custom_id = record["body"], record["custom_id"]
        if (
            record["method"] != "POST"
            or record["url"] != endpoint.url
            or type(body) is not dict
            or type(custom_id) is not str
            or not 0 < len(custom_id) <= self.limits.long_custom_id
            or custom_id.isspace()
            or body.get("stream") is True
            # Also False before the first model is known: the full checks record it.
            or body.get("model") != self._model
            # Recorded here for good: if a later test fails, the full checks see this line
            # as the id's first use, which it is.
            or self._ids.setdefault(custom_id, line) != line
            or not schemas.is_valid(endpoint.schema, body)
            # Only bodies that allow keys of their own can hold a typo or a token cap.
            or (
                schemas.open_properties(endpoint.schema) is not None
                and (low_token_limits(endpoint, body) or misspelled_keys(endpoint, body))
            )
        ):
            return False
        self._embedding_inputs += endpoint.count_inputs(body)
        return True

    def _check(self, record: dict[str, Any], line: int) -> list[Issue]:
        if self.fast_path and self._passes_fast_path(record, line):
            return []
        found: list[Issue] = []
        for key in REQUIRED_KEYS:
            if key not in record:
                found.append(
                    Issue(
                        line,
                        "missing_required_parameter",
                        key,
                        f"missing required parameter '{key}'; every line needs custom_id, "
                        "method, url and body",
                    )
                )
        for key in record:
            if key not in REQUIRED_KEYS:
                found.append(
                    Issue(
                        line,
                        "unknown_parameter",
                        key,
                        f"unknown top-level key {schemas.show(key)} is ignored or refused by the "
                        "server; move it into body or remove it",
                        severity="warning",
                    )
                )
        if "custom_id" in record:
            found.extend(self._check_custom_id(record["custom_id"], line))
        if "method" in record:
            method = record["method"]
            if method != "POST":
                found.append(
                    Issue(
                        line,
                        "invalid_method",
                        "method",
                        f'method is {schemas.show(method)}; batch requests must use "POST"',
                    )
                )
        url = record.get("url")
        self._learn_endpoint(url, line)
        if "url" in record:
            found.extend(self._check_url(url, line))
        if "body" in record:
            body = record["body"]
            if isinstance(body, dict):
                found.extend(self._check_body(body, line, named_endpoint(url)))
            else:
                found.append(
                    Issue(
                        line,
                        "invalid_type",
                        "body",
                        f"body must be an object (the request's JSON body), got "
                        f"{schemas.json_type(body)}",
                    )
                )
        return found

    def _check_custom_id(self, custom_id: Any, line: int) -> list[Issue]:
        if not isinstance(custom_id, str):
            return [
                Issue(
                    line,
                    "invalid_type",
                    "custom_id",
                    f"custom_id must be a string, got {schemas.describe(custom_id)}"
                    + ("" if custom_id is None else "; quote it"),
                )
            ]
        if not custom_id:
            return [
                Issue(line, "invalid_type", "custom_id", "custom_id must be a non-empty string")
            ]
        first = self._ids.setdefault(custom_id, line)
        if first != line:
            return [
                Issue(
                    line,
                    "duplicate_custom_id",
                    "custom_id",
                    f"{schemas.show(custom_id)} was already used on line {first}; "
                    "custom_id must be unique in the file",
                )
            ]
        return custom_id_warnings(custom_id, line, self.limits.long_custom_id)

    def _learn_endpoint(self, url: Any, line: int) -> None:
        """The first known url sets the batch endpoint; until then a near miss stands in."""
        if self._endpoint is not None or not isinstance(url, str):
            return
        if url in ENDPOINTS:
            self._endpoint, self._endpoint_line = ENDPOINTS[url], line
        elif self._guess is None:
            self._guess = named_endpoint(url)

    def _check_url(self, url: Any, line: int) -> list[Issue]:
        if not isinstance(url, str):
            return [
                Issue(
                    line,
                    "invalid_type",
                    "url",
                    f'url must be a string such as "/v1/chat/completions", got '
                    f"{schemas.json_type(url)}",
                )
            ]
        expected = self.endpoint
        if url == expected:
            return []
        message = wrong_url_message(url, expected, self._endpoint_line)
        return [Issue(line, "invalid_url", "url", message)]

    def _check_body(self, body: dict[str, Any], line: int, named: Endpoint | None) -> list[Issue]:
        """The body's rules; ``named`` is the endpoint the line's own url names or means."""
        found: list[Issue] = []
        if body.get("stream") is True:
            found.append(
                Issue(
                    line,
                    "streaming_unsupported",
                    "body.stream",
                    "streaming is not supported in the Batch API; remove body.stream or set it "
                    "to false",
                )
            )
        model = body.get("model")
        if isinstance(model, str):
            if self._model is None:
                self._model, self._model_line = model, line
            elif model != self._model:
                found.append(
                    Issue(
                        line,
                        "model_mismatch",
                        "body.model",
                        f"body.model is {schemas.show(model)} but line {self._model_line} uses "
                        f"{schemas.show(self._model)}; a batch file must use one model (split "
                        "the file per model)",
                    )
                )
        endpoint = self._endpoint or self._guess or named
        if endpoint is None:
            return found
        judge = endpoint
        problems = schemas.body_problems(endpoint.schema, body)
        if problems and named not in (None, endpoint) and schemas.is_valid(named.schema, body):
            # A body right for the url its line names: the url, already reported, is the one
            # mistake of this line, not the body as well.
            judge, problems = named, []
        found.extend(
            Issue(line, "invalid_request", problem.param, problem.message) for problem in problems
        )
        flagged = {problem.param for problem in problems}
        found.extend(w for w in body_warnings(judge, body, line) if w.param not in flagged)
        self._embedding_inputs += endpoint.count_inputs(body)
        return found
