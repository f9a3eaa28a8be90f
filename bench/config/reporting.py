"""The suite's analysis sections: contrasts, report settings and published numbers.

None of these enter a content key: changing a contrast, a margin or the bootstrap never
retrains anything. An equivalence margin is never assumed: ``≈`` needs a margin declared on
the contrast or per metric in ``report.margins``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from bench.config.base import COSMETIC, Strict


class ContrastSpec(Strict):
    """A declared comparison A − B, or a generator of them.

    Explicit: ``a`` and ``b`` (cell names). Generators: ``all_pairs: true`` (every pair of
    cells) or ``vs: <cell>`` (every other cell against it); ``within: protocol`` keeps pairs of
    the same protocol (with ``vs``, each protocol's cells are compared with the baseline
    encoder evaluated by that protocol).
    """

    a: str | None = Field(None, description="Cell name of A.")
    b: str | None = Field(None, description="Cell name of B.")
    all_pairs: bool = Field(False, description="Generate every pair of cells.")
    vs: str | None = Field(None, description="Generate every cell against this one.")
    within: Literal["protocol"] | None = Field(None, description="Pairs of one protocol only.")
    descendants: bool = Field(
        False, description="With `vs`: only cells whose encoder further pre-trains the baseline's.")
    metric: str | None = Field(None, description="One metric (default: the report's metrics).")
    alternative: Literal["two-sided", "greater", "less"] = Field(
        "two-sided", description="`greater` tests A > B."
    )
    family: str = Field("default", description="Multiplicity family (Holm within it).")
    margin: float | None = Field(
        None, gt=0, description="Equivalence margin (metric units): with it, TOST can declare "
        "A ≈ B. Without it (and without `report.margins` for the metric) no equivalence is "
        "tested.")
    paired: bool = Field(False, description="Also a paired t-test and Wilcoxon (matched seeds).")
    label: str = Field("", description="Display name; cosmetic.", json_schema_extra=COSMETIC)

    @model_validator(mode="after")
    def _one_form(self) -> ContrastSpec:
        forms = [self.a is not None or self.b is not None, self.all_pairs, self.vs is not None]
        if sum(forms) != 1:
            raise ValueError("a contrast is either explicit (a and b), all_pairs: true, or "
                             "vs: <cell>")
        if forms[0] and (self.a is None or self.b is None):
            raise ValueError("an explicit contrast needs both 'a' and 'b'")
        return self


class ControlSpec(Strict):
    """A contrast whose verdict is known in advance: an A/A comparison (cells identical up to
    their seeds) must show no difference, a planted effect must be found in its direction. The
    report opens with whether every control came out as it must (a broken pipeline shows there,
    not in a paper)."""

    contrast: str = Field(description="The `label` of a declared contrast (or `A vs B` for one "
                          "without a label).")
    expect: Literal["a_better", "b_better", "equivalent", "no_difference"] = Field(
        description="`a_better`: A ≻ B; `b_better`: B ≻ A; `equivalent`: A ≈ B (needs a margin); "
        "`no_difference`: neither ≻ nor ≺ (≈ or inconclusive).")
    metric: str | None = Field(None, description="The metric judged (default: every metric the "
                               "contrast is tested on).")
    why: str = Field("", description="What the control shows; cosmetic.",
                     json_schema_extra=COSMETIC)


class BootstrapSpec(Strict):
    """The case-level evidence: a paired bootstrap over the test set's groups."""

    resamples: int = Field(2000, ge=0, description="Resamples B (0: no case-level evidence).")
    seed: int = Field(0, description="Seed of the resampling.")


DISPLAY_NAMES = {
    "fine_tune": "fine-tune", "linear_probe": "linear probe", "knn": "kNN", "accuracy": "accuracy",
    "f1_weighted": "weighted F1", "f1_macro": "macro F1", "balanced_accuracy":
    "balanced accuracy", "auroc_macro": "macro AUROC", "ap_macro": "macro AP", "ece": "ECE",
    "brier": "Brier score", "nll": "NLL",
}
"""Display names of bench's own protocol kinds and metrics when a suite declares none."""


class ReportSpec(Strict):
    """What `bench report` shows."""

    title: str = Field("", description="Report title; cosmetic.", json_schema_extra=COSMETIC)
    metrics: list[str] = Field(
        default_factory=lambda: ["accuracy", "f1_weighted"], description="Metrics reported."
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level.")
    margins: dict[str, float] = Field(
        default_factory=dict, description="metric → equivalence margin for every contrast on "
        "that metric that declares none itself (e.g. {accuracy: 0.01}).")
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec,
                                     description="Case-level paired bootstrap.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Display names in the HTML and LaTeX reports: an "
        "encoder (`SSL+I_SSLp`), a cell, a protocol or a metric → its name in print (e.g. "
        "{SSL+I_SSLp: 'SSL + I-SSLp', f1_weighted: weighted F1}); cosmetic.",
        json_schema_extra=COSMETIC)

    def label(self, name: str) -> str:
        """The display name of an encoder, cell, protocol or metric: the declared one, else
        :data:`DISPLAY_NAMES`, else the name itself."""
        return self.labels.get(name) or DISPLAY_NAMES.get(name, name)

    @model_validator(mode="after")
    def _positive_margins(self) -> ReportSpec:
        bad = [m for m, v in self.margins.items() if not v > 0]
        if bad:
            raise ValueError(f"margins must be > 0; check {bad}")
        return self


class PublishedValue(Strict):
    """A published mean, with its SD and n when the source gives them."""

    mean: float = Field(description="Published mean.")
    sd: float | None = Field(None, ge=0, description="Published sample SD (n − 1).")
    n: int | None = Field(None, ge=1, description="Runs behind the published mean.")


class PublishedSpec(Strict):
    """A cell's published results: ``{source: "…", <metric>: {mean, sd, n}, …}``; the report
    shows them beside the measured ones with a replication verdict."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    source: str = Field(description="Where the numbers come from (paper, table).")
    margin: float | None = Field(
        None, gt=0, description="Margin of the replication verdict (default: report.margins).")

    @model_validator(mode="before")
    @classmethod
    def _metric_values(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fixed = {"source", "margin"}
            data = {k: (v if k in fixed else PublishedValue.model_validate(v))
                    for k, v in data.items()}
        return data

    @property
    def values(self) -> dict[str, PublishedValue]:
        """metric → published value."""
        return dict(self.__pydantic_extra__ or {})
