"""What every schema model shares: strict validation and the cosmetic-field marker."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from bench.config.names import DATA_REF_RE

COSMETIC = {"cosmetic": True}
"""``json_schema_extra`` marker: the field is ignored by content keys."""
KEYED_WHEN_SET = {"keyed_when_set": True}
"""``json_schema_extra`` marker of a field added after suites had finished runs: it enters a
content key only when it differs from its default (whose behaviour is what ran before), so adding
it changes no existing key, and setting it changes exactly the keys it should."""


class Strict(BaseModel):
    """Base of every schema model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def description() -> Any:
    """A free-text ``description`` field (cosmetic: never part of a key)."""
    return Field(default="", description="Free text; cosmetic.", json_schema_extra=COSMETIC)


DataRef = Annotated[
    str,
    Field(
        pattern=DATA_REF_RE.pattern,
        description="`dataset:part` (one part of a dataset's split) or `dataset` (all of it).",
    ),
]
"""A reference to a dataset part (``dataset:part``) or a whole dataset."""
