"""``rampup import flagd FILE``: convert flagd's JSON flag definitions to a rampup flag file.

What maps cleanly is converted: variants, ``defaultVariant``, ``state: DISABLED`` (the kill
switch), scalar ``metadata``, and JsonLogic targeting made of ``if`` chains over ``==``,
``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``starts_with``, ``ends_with``, ``sem_ver``,
``and``, ``or`` and ``$ref`` evaluators, serving a variant or a ``fractional`` split. A flag
with anything else is left out and listed on stderr with the reason; the TOML goes to stdout
(or ``--output``). ``fractional`` keeps its percentages, not flagd's buckets: rampup hashes
subjects with its own documented function, so individual subjects may change variant.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any

from ..config import load
from ..errors import ConfigError
from . import CommandError

__all__ = ["convert", "register", "run", "to_toml"]

Cond = dict[str, Any]
_COMPARE = {"==": "equals", "===": "equals", "!=": "not_equals", "!==": "not_equals"}
_ORDER = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SEMVER = {
    "=": "semver_eq",
    ">": "semver_gt",
    ">=": "semver_gte",
    "<": "semver_lt",
    "<=": "semver_lte",
}
_MAX_ALTERNATIVES = 32  # an `or` of `and`s multiplies out into rules; past this, do it by hand


class Unmapped(Exception):
    """Something in a flag that rampup's format cannot say."""


def register(sub: Any) -> None:
    """Add the ``import`` command to the ``rampup`` subparsers."""
    p = sub.add_parser(
        "import",
        help="convert another tool's flag definitions (flagd) to a rampup flag file",
        description=(
            "Convert flagd's JSON flag definitions to rampup's TOML flag file: what maps "
            "cleanly is written (stdout or --output), what does not is listed on stderr."
        ),
        allow_abbrev=False,
    )
    p.add_argument("format", choices=["flagd"], help="the format of FILE")
    p.add_argument("file", help="a flagd flag definition file (JSON)")
    p.add_argument("-o", "--output", help="write the TOML here instead of stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Convert ``args.file``; exit 0 (even when some flags could not be converted: they are
    listed), 1 for a file that is not flagd JSON."""
    try:
        data = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"{args.file} is not JSON: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("flags"), Mapping):
        raise CommandError(f'{args.file}: expected a flagd document {{"flags": {{...}}}}')
    flags, skipped, notes = convert(data)
    text = to_toml(flags, source=Path(args.file).name)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    for key, why in notes:
        print(f"rampup: note: {key}: {why}", file=sys.stderr)
    for key, why in skipped:
        print(f"rampup: not converted: {key}: {why}", file=sys.stderr)
    print(
        f"rampup: {len(flags)} flag(s) converted, {len(skipped)} not converted",
        file=sys.stderr,
    )
    return 0


def convert(
    data: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str]], list[tuple[str, str]]]:
    """(rampup flags, [(flag, why not converted)], [(flag, note)]) from a flagd document."""
    evaluators = data.get("$evaluators") or {}
    flags: dict[str, dict[str, Any]] = {}
    skipped: list[tuple[str, str]] = []
    notes: list[tuple[str, str]] = []
    for key, raw in data["flags"].items():
        try:
            flag, note = _flag(raw, evaluators)
            load({"flags": {key: flag}})  # rampup's own validation: names, defaults, values
        except Unmapped as exc:
            skipped.append((key, str(exc)))
            continue
        except ConfigError as exc:
            skipped.append((key, "; ".join(f"{p.where}: {p.message}" for p in exc.problems)))
            continue
        flags[key] = flag
        if note:
            notes.append((key, note))
    for name in sorted(set(data) - {"flags", "$evaluators", "$schema"}):
        skipped.append((f"[{name}]", "document-level entries are not converted"))
    return flags, skipped, notes


def _flag(raw: Any, evaluators: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    if not isinstance(raw, Mapping):
        raise Unmapped("not an object")
    variants = raw.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        raise Unmapped("no variants")
    for name, value in variants.items():
        _check_value(value, f"variant {name!r}")
    default = raw.get("defaultVariant")
    if not isinstance(default, str):
        raise Unmapped("no defaultVariant (rampup needs a default variant)")
    flag: dict[str, Any] = {"variants": dict(variants), "default": default}
    state = raw.get("state", "ENABLED")
    if state == "DISABLED":
        flag["killed"] = True
    elif state != "ENABLED":
        raise Unmapped(f"unknown state {state!r}")
    metadata = raw.get("metadata") or {}
    if metadata:
        if not isinstance(metadata, Mapping) or not all(
            isinstance(v, str | int | float | bool) for v in metadata.values()
        ):
            raise Unmapped("metadata values must be strings, numbers or booleans")
        flag["metadata"] = dict(metadata)
    note = ""
    targeting = raw.get("targeting")
    if targeting:  # {} and null mean none
        rules = _targeting(targeting, evaluators, default)
        if rules:
            flag["rules"] = rules
        if any("split" in r for r in rules):
            note = (
                "fractional converted with the same percentages; rampup buckets subjects with "
                "its own hash, so individual subjects may get another variant than under flagd"
            )
    return flag, note


def _check_value(value: Any, what: str) -> None:
    if value is None:
        raise Unmapped(f"{what} is null (TOML has no null)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_value(v, f"{what}.{k}")
    elif isinstance(value, list):
        for v in value:
            _check_value(v, what)


def _targeting(t: Any, evaluators: Mapping[str, Any], default: str) -> list[dict[str, Any]]:
    """JsonLogic targeting -> rampup rules, in order (a branch serving null serves the
    default variant, as flagd does)."""
    if isinstance(t, str):
        return [{"serve": t}]
    if not isinstance(t, Mapping) or len(t) != 1:
        raise Unmapped(f"targeting {_short(t)} is not an if/fractional/variant")
    ((op, args),) = t.items()
    if op == "fractional":
        return [_fractional(args)]
    if op != "if" or not isinstance(args, list):
        raise Unmapped(f"targeting operator {op!r} at the top (only if and fractional map)")
    rules: list[dict[str, Any]] = []
    pairs, rest = args[: len(args) // 2 * 2], args[len(args) // 2 * 2 :]
    for cond, outcome in zip(pairs[::2], pairs[1::2], strict=True):
        served = _outcome(outcome) or {"serve": default}
        for alternative in _condition(cond, evaluators):
            rules.append({"conditions": alternative, **served})
    last = _outcome(rest[0]) if rest else None
    if last is not None and last != {"serve": default}:  # "else the default" is no rule
        rules.append(last)
    return rules


def _outcome(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return {"serve": value}
    if isinstance(value, Mapping) and set(value) == {"fractional"}:
        return _fractional(value["fractional"])
    raise Unmapped(f"a branch serving {_short(value)} (only a variant name or fractional map)")


def _fractional(args: Any) -> dict[str, Any]:
    if not isinstance(args, list) or not args:
        raise Unmapped("fractional without buckets")
    rule: dict[str, Any] = {}
    if not isinstance(args[0], list):  # a bucketing expression first
        rule["bucket_by"] = _var(args[0])
        args = args[1:]
    weights: dict[str, float] = {}
    for bucket in args:
        if not isinstance(bucket, list) or not bucket or not isinstance(bucket[0], str):
            raise Unmapped(f"fractional bucket {_short(bucket)}")
        w = bucket[1] if len(bucket) > 1 else 1
        if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
            raise Unmapped(f"fractional weight {_short(w)}")
        weights[bucket[0]] = weights.get(bucket[0], 0) + w
    total = sum(weights.values())
    if total <= 0:
        raise Unmapped("fractional weights sum to 0")
    percents = {k: round(w * 100 / total, 2) for k, w in weights.items()}
    if (
        any(
            abs(p - w * 100 / total) > 1e-9
            for p, w in zip(percents.values(), weights.values(), strict=True)
        )
        or round(sum(percents.values()), 2) != 100
    ):
        raise Unmapped(f"fractional weights {weights} are not whole 0.01 % steps")
    rule["split"] = {k: int(p) if p == int(p) else p for k, p in percents.items()}
    return rule


def _condition(c: Any, evaluators: Mapping[str, Any]) -> list[list[Cond]]:
    """A JsonLogic condition -> alternatives (any may hold), each a list of conditions that
    must all hold."""
    if not isinstance(c, Mapping) or len(c) != 1:
        raise Unmapped(f"condition {_short(c)}")
    ((op, args),) = c.items()
    if op == "$ref":
        if not isinstance(args, str) or args not in evaluators:
            raise Unmapped(f"$ref to an undefined evaluator {_short(args)}")
        return _condition(evaluators[args], evaluators)
    if not isinstance(args, list):
        args = [args]
    if op in ("and", "or"):
        parts = [_condition(a, evaluators) for a in args]
        if op == "or":
            out = [alt for p in parts for alt in p]
        else:
            out = [[cond for alt in combo for cond in alt] for combo in product(*parts)]
        if len(out) > _MAX_ALTERNATIVES:
            raise Unmapped(f"an and/or expanding to {len(out)} rules")
        return out
    return [_comparison(op, args)]


def _comparison(op: str, args: list[Any]) -> list[Cond]:
    if op in _COMPARE and len(args) == 2:
        attr, value = _var_and_literal(args)
        _scalar(value, op)
        return [{"attribute": attr, "op": _COMPARE[op], "value": value}]
    if op in _ORDER and len(args) == 2:
        if _is_var(args[0]):
            return [_number(_var(args[0]), _ORDER[op], args[1])]
        return [_number(_var(args[1]), _ORDER[_FLIP[op]], args[0])]
    if op in ("<", "<=") and len(args) == 3:  # a < var < b
        attr = _var(args[1])
        return [_number(attr, _ORDER[_FLIP[op]], args[0]), _number(attr, _ORDER[op], args[2])]
    if op == "in" and len(args) == 2:
        if _is_var(args[1]) and isinstance(args[0], str):
            return [{"attribute": _var(args[1]), "op": "contains", "value": args[0]}]
        if _is_var(args[0]) and isinstance(args[1], list) and args[1]:
            for v in args[1]:
                _scalar(v, op)
            return [{"attribute": _var(args[0]), "op": "in", "value": list(args[1])}]
    if op in ("starts_with", "ends_with") and len(args) == 2 and isinstance(args[1], str):
        return [{"attribute": _var(args[0]), "op": op, "value": args[1]}]
    if op == "sem_ver" and len(args) == 3 and args[1] in _SEMVER and isinstance(args[2], str):
        return [{"attribute": _var(args[0]), "op": _SEMVER[args[1]], "value": args[2]}]
    raise Unmapped(f"operator {op!r} with {_short(args)}")


def _number(attr: str, op: str, value: Any) -> Cond:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unmapped(f"{op} against {_short(value)} (rampup compares numbers)")
    return {"attribute": attr, "op": op, "value": value}


def _scalar(value: Any, op: str) -> None:
    if not isinstance(value, str | int | float | bool):
        raise Unmapped(f"{op} against {_short(value)}")


def _is_var(x: Any) -> bool:
    return isinstance(x, Mapping) and set(x) == {"var"}


def _var_and_literal(args: list[Any]) -> tuple[str, Any]:
    if _is_var(args[0]) and not _is_var(args[1]):
        return _var(args[0]), args[1]
    if _is_var(args[1]) and not _is_var(args[0]):
        return _var(args[1]), args[0]
    raise Unmapped(f"comparison {_short(args)} (one side must be a var, the other a value)")


def _var(x: Any) -> str:
    """The attribute a ``{"var": ...}`` reads (``targetingKey`` is rampup's subject key)."""
    if not _is_var(x):
        raise Unmapped(f"{_short(x)} where a {{'var': ...}} was expected")
    name = x["var"]
    if isinstance(name, list):
        if len(name) != 1:
            raise Unmapped(f"var with a default {_short(name)}")
        name = name[0]
    if not isinstance(name, str) or not name or name.startswith("$flagd."):
        raise Unmapped(f"var {_short(name)}")
    return "key" if name == "targetingKey" else name


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# -- TOML ---------------------------------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _inline(v: Any) -> str:
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are valid in a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(str(k))} = {_inline(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def to_toml(flags: Mapping[str, Mapping[str, Any]], source: str = "") -> str:
    """The rampup flag file (TOML) for converted ``flags``."""
    lines = [f"# Converted from {source} by `rampup import flagd`; check it with `rampup check`."]
    lines.append("")
    if not flags:
        lines.append("flags = {}")
    for key, flag in flags.items():
        lines.append(f"[flags.{_key(key)}]")
        for field in ("variants", "default", "killed", "metadata"):
            if field in flag:
                lines.append(f"{field} = {_inline(flag[field])}")
        for rule in flag.get("rules", []):
            lines.append(f"[[flags.{_key(key)}.rules]]")
            lines.extend(f"{k} = {_inline(v)}" for k, v in rule.items())
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
