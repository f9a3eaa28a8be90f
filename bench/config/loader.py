"""Load a suite YAML: parse with positions, interpolate ``${VAR}``, apply ``--set`` overrides,
validate with pydantic and the cross-reference checks, and report every problem with its
``file:line:column`` and field path.

Example error line::

    suites/x.yaml:12:5 grid.protocols[1]: unknown protocol 'linear_prob' (did you mean 'linear_probe'?)
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from bench.config.errors import Loc, Located, Problem, SuiteError, did_you_mean, format_path
from bench.config.protocols import PROTOCOL_KINDS
from bench.config.schema import Suite

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Resolver(Protocol):
    """What a suite's names mean beyond the schema: architectures, methods and their
    parameters live in the layers above (models, ssl), so the plan hands the loader this."""

    def check(self, suite: Suite) -> list[Problem]:
        """Every unknown architecture or method and every bad method parameter."""
        ...

    def smoke_params(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A stage's method parameters as the ``smoke`` profile trains them."""
        ...


@dataclass
class LoadedSuite:
    """A validated suite with where it came from."""

    suite: Suite
    path: Path
    overrides: list[str] = field(default_factory=list)
    env_vars: dict[Loc, tuple[str, ...]] = field(default_factory=dict)
    """Field path → the ``${VAR}`` names its value was read from (e.g. ``("datasets", "isic",
    "labels")`` → ``("ISIC2019_GT",)``): what a message about that field tells the user to set."""

    def env_hint(self, *prefix: str | int) -> str:
        """``"set ISIC2019_GT (datasets.isic.labels), …"`` for the fields under ``prefix`` whose
        value came from the environment, or ``""``."""
        found = [f"{v} ({format_path(loc)})" for loc, names in self.env_vars.items()
                 if loc[: len(prefix)] == prefix for v in names]
        return "set " + ", ".join(found) if found else ""

    @property
    def output(self) -> Path:
        """Output folder: the suite's ``output`` or ``runs/<name>``, relative to the cwd."""
        return Path(self.suite.output or f"runs/{self.suite.name}")


# --------------------------------------------------------------------------------------------
# parsing with positions
# --------------------------------------------------------------------------------------------
def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def _to_plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    if hasattr(node, "real") and type(node).__name__ == "ScalarFloat":
        return float(node)
    if type(node).__name__ in {"ScalarInt", "ScalarBoolean"}:
        return int(node) if type(node).__name__ == "ScalarInt" else bool(node)
    if isinstance(node, str):
        return str(node)
    return node


def _position(tree: Any, loc: Loc) -> tuple[int, int] | None:
    """1-based (line, column) of the deepest node of ``loc`` present in the parsed tree."""
    best: tuple[int, int] | None = None
    node = tree
    for step in loc:
        try:
            if isinstance(node, CommentedMap) and step in node:
                line, col = node.lc.key(step)
                best = (line + 1, col + 1)
                node = node[step]
            elif isinstance(node, CommentedSeq) and isinstance(step, int) and step < len(node):
                line, col = node.lc.item(step)
                best = (line + 1, col + 1)
                node = node[step]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    if best is None and isinstance(tree, CommentedMap | CommentedSeq):
        best = (tree.lc.line + 1, tree.lc.col + 1)
    return best


# --------------------------------------------------------------------------------------------
# interpolation and overrides
# --------------------------------------------------------------------------------------------
def _scalar(text: str) -> Any:
    """Parse one YAML scalar the way the file would (``3`` → 3, ``true`` → True)."""
    try:
        value = YAML(typ="safe").load(text)
    except Exception:  # a string that is not valid YAML on its own stays a string
        return text
    return text if value is None and text.strip() not in {"null", "~", ""} else value


def _env_vars(node: Any, loc: Loc = ()) -> dict[Loc, tuple[str, ...]]:
    """Every field whose text names ``${VAR}``, with those names (before interpolation)."""
    if isinstance(node, dict):
        return {k: v for key, sub in node.items() for k, v in _env_vars(sub, (*loc, key)).items()}
    if isinstance(node, list):
        return {k: v for i, sub in enumerate(node) for k, v in _env_vars(sub, (*loc, i)).items()}
    names = tuple(dict.fromkeys(n for n, _ in _VAR_RE.findall(node))) \
        if isinstance(node, str) else ()
    return {loc: names} if names else {}


def _interpolate(node: Any, env: Mapping[str, str], loc: Loc, problems: list[Problem]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, env, (*loc, k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, (*loc, i), problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            Problem(loc, f"environment variable {name!r} is not set "
                         f"(set it, or write ${{{name}:-default}})")
        )
        return m.group(0)

    whole = _VAR_RE.fullmatch(node) is not None
    out = _VAR_RE.sub(sub, node)
    return _scalar(out) if whole else out


def parse_override(text: str) -> tuple[Loc, Any]:
    """``protocols.ft.epochs=3`` → (('protocols', 'ft', 'epochs'), 3). Indices: ``a.b[1]``."""
    if "=" not in text:
        raise SuiteError([Located((), f"override {text!r} is not key.path=value", "--set")])
    key, value = text.split("=", 1)
    loc: list[str | int] = []
    for part in key.strip().split("."):
        m = re.fullmatch(r"([^\[\]]+)((?:\[\d+\])*)", part)
        if not m:
            raise SuiteError([Located((), f"bad key path {key!r}", f"--set {text}")])
        loc.append(m.group(1))
        loc.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(loc), _scalar(value)


def _apply_override(data: dict[str, Any], loc: Loc, value: Any, text: str) -> None:
    node: Any = data
    for i, step in enumerate(loc[:-1]):
        nxt = loc[i + 1]
        if isinstance(node, dict):
            if step not in node or node[step] is None:
                node[step] = [] if isinstance(nxt, int) else {}
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            raise SuiteError([Located(loc, f"cannot set: {format_path(loc[: i + 1])} is not a "
                                           "mapping or an existing list item", f"--set {text}")])
    last = loc[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last <= len(node):
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        raise SuiteError([Located(loc, "cannot set this path", f"--set {text}")])


# --------------------------------------------------------------------------------------------
# pydantic errors → readable problems
# --------------------------------------------------------------------------------------------
def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model whose fields live at ``loc`` (for 'did you mean' on unknown keys)."""
    tp: Any = Suite
    for step in loc:
        tp = _unwrap(tp)
        if typing.get_origin(tp) is typing.Union and step in PROTOCOL_KINDS:
            tp = PROTOCOL_KINDS[step]  # the tag of the protocol union
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not isinstance(step, str) or step not in tp.model_fields:
                return None
            tp = tp.model_fields[step].annotation
        else:
            origin = typing.get_origin(tp)
            args = typing.get_args(tp)
            if origin in (dict, Mapping) and args:
                tp = args[1]
            elif origin in (list, tuple, Sequence) and args:
                tp = args[0]
            else:
                return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """Strip Optional / Annotated."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _one_of(expected: str) -> str:
    """``"'a', 'b', 'c'"`` → ``"'a', 'b' or 'c'"`` (pydantic's literal wording)."""
    items = [x.strip() for x in expected.split(",")]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    out: list[Problem] = []
    for e in err.errors(include_url=False):
        raw: Loc = tuple(p for p in e["loc"] if isinstance(p, int | str))
        # a protocol's errors carry its kind (the union's tag) after its name: not a YAML key
        loc = (raw[:2] + raw[3:] if len(raw) > 2 and raw[0] == "protocols"
               and raw[2] in PROTOCOL_KINDS else raw)
        kind = e["type"]
        if kind == "union_tag_invalid":
            ctx = e.get("ctx", {})
            choices = re.findall(r"'([^']*)'", ctx.get("expected_tags", ""))
            tag = str(ctx.get("tag"))
            out.append(Problem((*loc, "kind"), f"{tag!r} is not one of "
                               f"{_one_of(ctx.get('expected_tags', ''))}"
                               f"{did_you_mean(tag, choices)}"))
        elif kind == "union_tag_not_found":
            out.append(Problem((*loc, "kind"), f"required field 'kind' is missing (one of "
                               f"{_one_of(', '.join(repr(k) for k in PROTOCOL_KINDS))})"))
        elif kind == "extra_forbidden":
            parent = _model_at(raw[:-1])
            hint = did_you_mean(str(loc[-1]), parent.model_fields) if parent else ""
            out.append(Problem(loc, f"unknown field {loc[-1]!r}{hint}"))
        elif kind == "missing":
            out.append(Problem(loc, f"required field {loc[-1]!r} is missing"))
        elif kind == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            choices = re.findall(r"'([^']*)'", expected)
            hint = did_you_mean(str(e.get("input")), choices)
            out.append(Problem(loc, f"{e['input']!r} is not one of {expected}{hint}"))
        else:
            msg = e["msg"].removeprefix("Value error, ")
            out.append(Problem(loc, f"{msg} (got {e.get('input')!r})"
                               if kind not in {"value_error", "assertion_error"} else msg))
    return out


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def load_suite(
    path: str | Path,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    profile: str | None = None,
    *,
    resolver: Resolver,
) -> LoadedSuite:
    """Read, interpolate, apply a profile (e.g. ``smoke``) and ``--set`` overrides, and validate
    a suite (schema, references, and ``resolver``'s names); raise :class:`SuiteError` listing
    every problem with its file:line:col. Callers use :func:`bench.plan.load_suite`, which
    passes the registries' resolver."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError([Located((), f"cannot read suite: {exc.strerror}", str(path))]) from exc
    except UnicodeDecodeError as exc:
        raise SuiteError([Located((), f"the suite is not UTF-8 text (byte {exc.start}: "
                                      f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8",
                                  str(path))]) from exc
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SuiteError([Located((), f"YAML syntax error: {exc.problem or exc}", where)]) from exc
    except Exception as exc:  # DuplicateKeyError and friends carry marks in their text
        raise SuiteError([Located((), f"YAML error: {exc}", str(path))]) from exc
    if not isinstance(tree, CommentedMap):
        raise SuiteError([Located((), "a suite must be a mapping of sections", f"{path}:1:1")])

    problems: list[Problem] = []
    plain = _to_plain(tree)
    env_vars = _env_vars(plain)
    data = _interpolate(plain, env, (), problems)
    if profile is not None:
        from bench.config.profiles import apply_profile

        try:
            apply_profile(data, profile, resolver.smoke_params)
        except ValueError as exc:
            raise SuiteError([Located((), str(exc), f"--profile {profile}")]) from exc
    overridden: dict[Loc, str] = {}
    for text_ in overrides:
        loc, value = parse_override(text_)
        _apply_override(data, loc, value, text_)
        overridden[loc] = text_
        env_vars = {k: v for k, v in env_vars.items() if k[: len(loc)] != loc}

    suite: Suite | None = None
    if not problems:
        try:
            suite = Suite.model_validate(data)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(exc))
    if suite is not None:
        from bench.config.fractions import expand_label_fractions
        from bench.config.refs import check_references

        suite, expanded = expand_label_fractions(suite)
        problems.extend(expanded)
        problems.extend(check_references(suite))
        if not problems:
            problems.extend(resolver.check(suite))

    if problems:
        raise SuiteError([_locate(p, path, tree, overridden) for p in problems])
    assert suite is not None
    return LoadedSuite(suite=suite, path=path, overrides=list(overrides), env_vars=env_vars)


def _locate(p: Problem, path: Path, tree: Any, overridden: Mapping[Loc, str]) -> Located:
    for loc, text in overridden.items():
        if p.loc[: len(loc)] == loc or loc[: len(p.loc)] == p.loc:
            return Located(p.loc, p.message, f"--set {text}")
    pos = _position(tree, p.loc)
    where = f"{path}:{pos[0]}:{pos[1]}" if pos else str(path)
    return Located(p.loc, p.message, where)
