"""A pydantic ValidationError of a config, as scikit-learn style messages that name the parameter, what it
must be and what it got (``The 'train.lr' parameter must be a float in (0, inf) or null. Got -1.``)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import annotated_types as at
from pydantic import BaseModel, ValidationError

from headstart._validation import did_you_mean


def validation_message(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line per distinct error of ``exc``, raised while validating ``model``."""
    return "\n".join(dict.fromkeys(_format_error(e, model) for e in exc.errors()))


def _field_info(loc: Sequence[Any], model: type[BaseModel] | None):
    info = None
    for part in loc:
        if not isinstance(part, str) or model is None or part not in model.model_fields:
            break
        info = model.model_fields[part]
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return info


def _describe(info) -> str:
    """'a float in (0, inf)' from a pydantic field's annotation and constraints."""
    ann = str(info.annotation)
    kind = "an int" if "int" in ann and "float" not in ann else "a float"
    low = high = None
    left, right = "(", ")"
    for meta in info.metadata:
        if isinstance(meta, at.Gt):
            low, left = meta.gt, "("
        elif isinstance(meta, at.Ge):
            low, left = meta.ge, "["
        elif isinstance(meta, at.Lt):
            high, right = meta.lt, ")"
        elif isinstance(meta, at.Le):
            high, right = meta.le, "]"
    text = f"{kind} in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    if "None" in ann:
        text += " or null"
    return text


def _format_error(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    loc = [p for p in err["loc"] if isinstance(p, str)]
    name = ".".join(loc)
    got = err.get("input")
    etype = err["type"]
    info = _field_info(loc, model)
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in expected.replace(" or ", ", ").split(",")]
        listed = "{" + ", ".join(repr(o) for o in options if o) + "}"
        hint = did_you_mean(str(got), options) if isinstance(got, str) else ""
        return f"The {name!r} parameter must be one of {listed}. Got {got!r}.{hint}"
    if info is not None and etype.startswith(("greater", "less", "float", "int")):
        return f"The {name!r} parameter must be {_describe(info)}. Got {got!r}."
    if etype.startswith("bool"):
        return f"The {name!r} parameter must be true or false. Got {got!r}."
    if etype.startswith("path") or etype.startswith("string"):
        return f"The {name!r} parameter must be a path or string. Got {got!r}."
    return f"The {name!r} parameter is invalid ({err['msg']}). Got {got!r}."
