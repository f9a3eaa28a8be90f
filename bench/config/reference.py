"""The suite reference (docs/suite-reference.md), generated from the pydantic schema.

``python -m bench.config.reference > docs/suite-reference.md`` rewrites it; a test fails when
a schema field is missing from the committed file.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator

from pydantic import BaseModel

from bench.config.protocols import PROTOCOL_KINDS, ProtocolBase
from bench.config.reporting import PublishedSpec, PublishedValue
from bench.config.schema import Suite

SECTIONS = {
    "": "Top level",
    "datasets.<name>": "datasets — named sources of images",
    "inits.<name>": "inits — architectures and their starting weights",
    "stages.<name>": "stages — pre-training steps",
    "protocols.<name>": "protocols — evaluation",
    "grid": "grid — which cells run",
    "seeds": "seeds",
    "contrasts[]": "contrasts — comparisons",
    "report": "report",
    "published.<name>": "published — a paper's numbers per cell",
}


def _models(tp: object) -> list[type[BaseModel]]:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out = []
    for arg in typing.get_args(tp) if origin is not None else []:
        out += _models(arg)
    return out


def _type_name(tp: object) -> str:
    text = str(tp).replace("typing.", "")
    text = re.sub(r"bench\.config\.[a-z_]+\.", "", text)
    text = re.sub(r"Annotated\[Union\[[A-Za-z, ]*\], FieldInfo\([^)]*\)\]", "ProtocolSpec", text)
    return text.replace("<class '", "").replace("'>", "")


def field_paths(model: type[BaseModel] = Suite, prefix: str = "",
                seen: set[str] | None = None) -> Iterator[tuple[str, str, str, str]]:
    """(path, type, default, description) of every field, depth first (the fields protocol
    kinds share once, then each kind's own)."""
    seen = set() if seen is None else seen
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if path in seen:
            continue
        seen.add(path)
        tp = info.annotation
        if issubclass(model, ProtocolBase) and name == "kind":
            kinds = " or ".join(f"`{k}`" for k in PROTOCOL_KINDS)
            yield path, f"Literal{list(PROTOCOL_KINDS)}", "required", f"The protocol: {kinds}."
            continue
        if info.is_required():
            default = "required"
        elif info.default_factory is not None:
            try:
                default = repr(info.default_factory())
            except TypeError:
                default = "…"
        else:
            default = repr(info.default)
        if len(default) > 60:
            default = "(see below)" if _models(tp) else default[:57] + "…"
        yield path, _type_name(tp), default, info.description or ""
        origin = typing.get_origin(tp)
        sub = _models(tp)
        if sub:
            args = typing.get_args(tp)
            if origin is dict:
                child = f"{path}.<name>."
            elif origin is list or (args and typing.get_origin(args[0]) is list):
                child = f"{path}[]."
            else:
                child = f"{path}."
            for m in dict.fromkeys(sub):
                yield from field_paths(m, child, seen)
    if model is PublishedSpec:  # its metric entries are keys of the cell's block
        yield (f"{prefix}<metric>", "PublishedValue", "—",
               "A published metric (any name in `protocols.<name>.metrics`).")
        yield from field_paths(PublishedValue, f"{prefix}<metric>.")


def reference_markdown() -> str:
    """The whole reference page."""
    lines = [
        "# Suite reference",
        "",
        "Every field of a suite YAML, generated from the schema (`bench/config/schema.py`) by",
        "`python -m bench.config.reference`. Unknown keys are errors; `${VAR}` and",
        "`${VAR:-default}` read the environment; `--set path=value` overrides any field;",
        "`--profile smoke` shrinks a suite (see `bench/config/profiles.py`). Method parameters",
        "(`stages.<name>.params`) are validated by the method: see the methods table in the",
        "README.",
        "",
        "| field | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for path, tp, default, desc in field_paths():
        tp = tp.replace("|", "\\|")
        default = default.replace("|", "\\|")
        lines.append(f"| `{path}` | `{tp}` | `{default}` | {desc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
