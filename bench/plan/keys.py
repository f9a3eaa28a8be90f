"""Content keys: a canonical JSON hash of what a unit computes, never of names or order."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.config.names import parse_ref


def key_view(value: Any) -> Any:
    """JSON-able view of a config without its cosmetic fields (recursively); a field marked
    ``keyed_when_set`` appears only when it differs from its default."""
    if isinstance(value, BaseModel):
        out = {}
        for name, info in type(value).model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("cosmetic"):
                continue
            v = getattr(value, name)
            if isinstance(extra, dict) and extra.get("keyed_when_set") and \
                    v == info.get_default(call_default_factory=True):
                continue
            out[name] = key_view(v)
        return out
    if isinstance(value, dict):
        return {str(k): key_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [key_view(v) for v in value]
    return value


def content_key(kind: str, *parts: Any) -> str:
    """sha256 of a canonical JSON encoding of ``(kind, *parts)``."""
    text = json.dumps([kind, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()



def search_key(cell) -> str:
    """Content key of a cell's lr search (the search depends on exactly what the cell does)."""
    return f"{cell.key}-lr"


def method_digest(method: str) -> str:
    """sha256 of a user method's source file ('' for bench's own methods): editing the file
    changes the keys of the stages that use it."""
    import inspect

    from bench.ssl.methods import METHODS, resolve_method

    if method in METHODS:
        return ""
    source = inspect.getsourcefile(resolve_method(method))
    return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""


def data_hash(datasets: dict[str, Any], refs: list[str], repeat: list[int] | None) -> str:
    """Hash of a union of dataset parts with repeat factors."""
    reps = repeat or [1] * len(refs)
    parts = []
    for ref, r in zip(refs, reps, strict=True):
        ds, part = parse_ref(ref)
        parts.append([datasets[ds].manifest_hash(part), r])
    return content_key("data", parts)
