"""Types as annotations say them (list[int], dict[str, str], Literal[...], Annotated[..., "how to name
it"]), checked on values read from a file: what tclib.params reads its fields' types from."""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin


def base(hint: Any) -> Any:
    """The type under an Annotated description."""
    return get_args(hint)[0] if get_origin(hint) is Annotated else hint


def describe(hint: Any) -> str:
    """How a problem names a type: its Annotated description, else its name or choices."""
    if get_origin(hint) is Annotated:
        return get_args(hint)[1]
    if get_origin(hint) is Literal:
        return f"one of {get_args(hint)}"
    return getattr(get_origin(hint) or hint, "__name__", str(hint))


def coerce(value: Any, expected: Any) -> Any:
    """`value` as the field type where the schema allows it (an int where a float is expected, null as
    an empty string or mapping); anything else is returned as is, for the type check to report."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and value is None:
        return ""
    if get_origin(expected) is dict and value is None:
        return {}
    return value


def is_a(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` (lists and mappings element by element, Literal by its choices;
    an int is a float, a bool is no number)."""
    hint = base(hint)
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(is_a(value, option) for option in args)
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in args)
    if origin is list:
        return isinstance(value, list) and all(is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(is_a(k, args[0]) and is_a(v, args[1]) for k, v in value.items())
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def type_problem(value: Any, hint: Any) -> str | None:
    """What is wrong with the type of `value` under `hint` ("must be ..., got ..."), or None."""
    origin, args = get_origin(base(hint)), get_args(base(hint))
    if is_a(value, hint):
        return None
    if origin is dict and isinstance(value, dict):
        for key, entry in value.items():
            if not is_a(key, args[0]):
                choices = get_args(args[0])
                named = f"{', '.join(map(repr, choices[:-1]))} and {choices[-1]!r}" if choices else describe(args[0])
                return f"may only set {named}, got {value!r}"
            if not is_a(entry, args[1]):
                return f"{key} must be {describe(args[1])}, got {entry!r}"
    if origin is Literal or (origin is list and isinstance(value, list)):
        return f"must be {describe(hint)}, got {value!r}"
    return f"must be {describe(hint)}, got {type(value).__name__} {value!r}"
