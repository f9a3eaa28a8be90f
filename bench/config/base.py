"""What every schema model shares: strict validation and the cosmetic-field marker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

COSMETIC = {"cosmetic": True}
"""``json_schema_extra`` marker: the field is ignored by content keys."""


class Strict(BaseModel):
    """Base of every schema model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
