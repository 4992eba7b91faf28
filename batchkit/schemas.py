"""Loads the JSON Schemas shipped in ``schemas/`` and checks request bodies against them.

Two engines, on purpose (DESIGN.md, "Measured here"): ``jsonschema_rs`` answers "is this body
valid?" on every line at close to parsing speed, and the ``jsonschema`` package explains the
few bodies that are not, with the JSON path and the rule that failed.  The tests check that
both engines agree on every schema.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from batchkit.errors import BatchkitError

if TYPE_CHECKING:  # imported when a body is explained: most runs never need it (~40 ms)
    import jsonschema
    from jsonschema.exceptions import ValidationError

# In a wheel the files live in the package ``batchkit.schema_files`` (setup.cfg maps the
# top-level ``schemas/`` folder there); in a plain checkout they are read from ``schemas/``.
_CHECKOUT_DIR = Path(__file__).resolve().parent.parent / "schemas"


def schema_path(name: str) -> Path:
    """Where the schema file ``name`` (e.g. ``chat_completions.json``) is on this install."""
    try:
        candidate = resources.files("batchkit.schema_files") / name
        if candidate.is_file():
            return Path(str(candidate))
    except ModuleNotFoundError:
        pass
    path = _CHECKOUT_DIR / name
    if not path.is_file():
        raise BatchkitError(f"schema {name} is missing from this installation of batchkit")
    return path


@cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads(schema_path(name).read_bytes())
    return schema


@cache
def fast_schema(name: str) -> dict[str, Any]:
    """Schema ``name`` as the fast engine runs it: the same verdicts, reached sooner.

    Its "one of these kinds" rules (a message's ``role``, a content part's ``type``) are
    written as one ``if``/``then`` per kind, so that the explaining engine names the field
    that is wrong; the fast engine would try every ``if`` of every message.  Here each such
    ``allOf`` becomes an ``anyOf`` of the same kinds, which stops at the kind that matches.
    :func:`_by_kind` rewrites only where the two say the same (tests/test_schemas.py and the
    differential corpus check both engines on every endpoint's bodies).
    """
    return _rewritten(load_schema(name))  # type: ignore[no-any-return]


@cache
def _fast_validator(name: str) -> Any:
    return jsonschema_rs.validator_for(fast_schema(name))


def _rewritten(node: Any) -> Any:
    """A copy of the schema ``node`` with every :func:`_by_kind` rule rewritten."""
    if isinstance(node, list):
        return [_rewritten(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _rewritten(value) for key, value in node.items()}
    branches = _by_kind(copy)
    if branches is not None:
        del copy["allOf"]
        copy["anyOf"] = branches
    return copy


def _by_kind(node: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``node``'s ``allOf`` as ``anyOf`` branches, when it is one ``if``/``then`` per kind.

    That is: ``node`` is an object that requires a key ``k`` whose values are an ``enum``, and
    its ``allOf`` is, for exactly each value ``v`` of the enum, ``if k is v then T``.  Then
    every valid instance meets exactly one ``if``, and "``k`` is ``v`` and ``T``" for some
    ``v`` says the same as the ``allOf``.  Anything else (an ``else``, another condition, a
    kind with no rule) is left as it is: ``None``.
    """
    parts = node.get("allOf")
    if node.get("type") != "object" or "anyOf" in node or not isinstance(parts, list):
        return None
    key: str | None = None
    kinds: list[Any] = []
    branches: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict) or set(part) != {"if", "then"}:
            return None
        condition = part["if"]
        if not isinstance(condition, dict) or condition.get("type", "object") != "object":
            return None
        rules = condition.get("properties")
        if set(condition) - {"type", "required", "properties"} or not isinstance(rules, dict):
            return None
        if len(rules) != 1:
            return None
        ((name, rule),) = rules.items()
        if condition.get("required") != [name] or key not in (None, name):
            return None
        if not isinstance(rule, dict) or set(rule) != {"const"}:
            return None
        key = name
        kinds.append(rule["const"])
        branches.append({"properties": {name: rule}, "allOf": [part["then"]]})
    declared = node.get("properties", {}).get(key)
    enum = declared.get("enum") if isinstance(declared, dict) else None
    if (
        key is None
        or key not in node.get("required", ())
        or not isinstance(enum, list)
        or not all(isinstance(kind, str) for kind in [*kinds, *enum])
        or len(set(kinds)) != len(kinds)
        or sorted(kinds) != sorted(enum)
    ):
        return None
    return branches


@cache
def _explaining_validator(name: str) -> jsonschema.protocols.Validator:
    import jsonschema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@dataclass(frozen=True)
class BodyProblem:
    """One way a body breaks its schema: ``param`` is the JSON path from ``body``."""

    param: str
    message: str


@cache
def open_properties(name: str) -> frozenset[str] | None:
    """The body keys schema ``name`` names, when it lets other keys through; else ``None``.

    Chat and completions bodies may carry keys of the provider's own, so an unknown key there
    is no error, only a possible typo.  Embeddings refuse unknown keys: the schema says so.
    """
    schema = load_schema(name)
    if schema.get("additionalProperties") is False:
        return None
    return frozenset(schema.get("properties", {}))


@lru_cache(maxsize=1024)
def close_key(key: str, known: frozenset[str]) -> str | None:
    """The known key that ``key`` is most likely a typo of (``max_token`` -> ``max_tokens``).

    Cached: a file repeats the same few unknown keys on every line (bounded: keys are data).
    """
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=_KEY_CUTOFF)
    return close[0] if close else None


#: How alike an unknown key must be to a known one to be called a typo of it (difflib's ratio):
#: ``max_token`` and ``temprature`` are typos; ``top_k`` (a parameter of other providers) is not.
_KEY_CUTOFF = 0.85


def is_valid(name: str, body: Any) -> bool:
    """The fast path: is ``body`` valid against schema ``name``?"""
    return bool(_fast_validator(name).is_valid(body))


def body_problems(name: str, body: Any) -> list[BodyProblem]:
    """Every problem in ``body``, or ``[]``.  Cheap for valid bodies; explains invalid ones."""
    if is_valid(name, body):
        return []
    problems: list[BodyProblem] = []
    seen: set[tuple[str, str]] = set()
    for error in _explaining_validator(name).iter_errors(body):
        for problem in _explain(_best_match(error)):
            key = (problem.param, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    if not problems:  # the engines disagree; say so rather than call the body valid
        problems.append(BodyProblem("body", "the body does not match its schema"))
    return problems


def _best_match(error: ValidationError) -> ValidationError:
    from jsonschema.exceptions import best_match

    return best_match([error])


def format_path(path: Any, root: str = "body") -> str:
    """``["messages", 0, "role"]`` -> ``body.messages[0].role``."""
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def show(value: Any, width: int = 60) -> str:
    """A value as JSON for a message, cut to about ``width`` characters.

    JSON quoting escapes the control characters of a string, so a value from the file never
    breaks a message's line.  NaN and the infinities, which a Python caller can pass but JSON
    cannot hold (orjson would write ``null``), are named as they are.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("nan", "NaN").replace("inf", "Infinity")
    if isinstance(value, str) and len(value) > width:
        return orjson.dumps(value[:width]).decode()[:-1] + '..."'
    try:
        text = orjson.dumps(value, default=repr).decode()
    except TypeError:  # an integer past 64 bits, which only the standard parser gives
        text = json.dumps(value, default=repr, ensure_ascii=False)
    return text if len(text) <= width else text[:width] + "..."


def _explain(error: ValidationError) -> Iterator[BodyProblem]:
    param = format_path(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        for name in expected:
            if isinstance(value, dict) and name not in value:
                yield BodyProblem(f"{param}.{name}", f"{param}.{name} is required")
        return
    if kind in _HINTED and (hint := _hint(error)):
        yield BodyProblem(param, f"{param}: {hint}")
        return
    if kind == "enum":
        choices = ", ".join(show(choice) for choice in expected)
        message = f"{show(value)} is not one of {choices}"
    elif kind == "const":
        message = f"{show(value)} must be {show(expected)}"
    elif kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        message = f"expected {wanted}, got {describe(value)}"
    elif kind in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        relation = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[kind]
        message = f"{show(value)} is out of range: must be {relation} {expected}"
    elif kind in {"minItems", "maxItems"}:
        bound = "at least" if kind == "minItems" else "at most"
        message = f"has {len(value)} items; must have {bound} {expected}"
    elif kind in {"minLength", "maxLength"}:
        bound = "at least" if kind == "minLength" else "at most"
        message = f"is {len(value)} characters long; must be {bound} {expected}"
    elif kind == "additionalProperties":
        known = frozenset(error.schema.get("properties", {}))
        for name in sorted(set(value) - known):
            where = f"{param}.{name}"
            hint = close_key(name, known)
            typo = f" (did you mean {hint}?)" if hint else ""
            yield BodyProblem(where, f"{where} is not a parameter of this endpoint{typo}")
        return
    elif kind in {"anyOf", "oneOf"} and not error.context:
        message = f"{show(value)} is not a valid value here"
    else:
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    yield BodyProblem(param, f"{param}: {message}")


#: The rules whose generic wording says too little ("should not be valid under {}"): where the
#: schema gives such a rule a description, the description is the message.
_HINTED = frozenset({"not", "minProperties", "maxProperties"})


def _hint(error: ValidationError) -> str | None:
    """The description of the (sub)schema whose rule failed: its own words for what to do.

    A schema file's root description documents the file, not a rule: never used here.
    """
    schema = error.schema
    if not isinstance(schema, dict) or "$schema" in schema:
        return None
    hint = schema.get("description")
    return hint if isinstance(hint, str) else None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def describe(value: Any) -> str:
    """A value's type and value for "got ..." in a message: ``number 7``, ``null``, ``NaN``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return show(value)
    return f"{json_type(value)} {show(value)}"
