"""Expansion of a suite's contrasts (explicit pairs and generators) into concrete pairs."""

from __future__ import annotations

from collections.abc import Sequence

from bench.config.schema import ContrastSpec


def split_cell(name: str) -> tuple[str, str]:
    """``'init+stage/protocol'`` → (``'init+stage'``, ``'protocol'``)."""
    encoder, _, protocol = name.rpartition("/")
    return encoder, protocol


def expand_contrasts(contrasts: Sequence[ContrastSpec], cells: Sequence[str]
                     ) -> list[ContrastSpec]:
    """Concrete contrasts (``a`` and ``b`` set), in declaration order; a pair repeated within
    one family is kept once (the same pair in two families is tested in both).

    Generators only name cells that exist; an explicit pair is kept as written (the reference
    check reports unknown cells).
    """
    out: list[ContrastSpec] = []
    seen: set[tuple[str, str, str | None, str]] = set()

    def add(spec: ContrastSpec, a: str, b: str) -> None:
        key = (a, b, spec.metric, spec.family)
        if a != b and key not in seen:
            seen.add(key)
            out.append(spec.model_copy(update={"a": a, "b": b, "all_pairs": False, "vs": None,
                                               "within": None, "descendants": False}))

    for spec in contrasts:
        if spec.a is not None and spec.b is not None:
            add(spec, spec.a, spec.b)
        elif spec.all_pairs:
            for i, a in enumerate(cells):
                for b in cells[i + 1:]:
                    if spec.within is None or split_cell(a)[1] == split_cell(b)[1]:
                        add(spec, a, b)
        elif spec.vs is not None:
            base_enc = split_cell(spec.vs)[0]
            for c in cells:
                enc, proto = split_cell(c)
                if spec.descendants and not enc.startswith(base_enc + "+"):
                    continue
                if spec.within == "protocol":
                    base = f"{base_enc}/{proto}"
                    if base in cells and c != base:
                        add(spec, c, base)
                elif c != spec.vs:
                    add(spec, c, spec.vs)
    return out
