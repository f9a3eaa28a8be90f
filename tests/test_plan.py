"""Grid expansion, content-addressed keys and the DAG."""

from __future__ import annotations

from pathlib import Path

from conftest import suite_plan

from bench.config.names import expand_cells
from bench.plan import load_suite
from bench.seeds import derive_seed, trial_seeds

_plan = suite_plan


def test_grid_is_the_product_in_order(tiny_suite: Path) -> None:
    plan = _plan(tiny_suite)
    assert [c.name for c in plan.cells] == [
        "rnd+sup/ft", "rnd+sup/lp", "rnd+sup+bt/ft", "rnd+sup+bt/lp"]
    assert len(plan.trials) == 4 * 2
    assert [s.label for s in plan.stages] == ["rnd+sup", "rnd+sup+bt"]


def test_include_exclude_and_dedupe(tiny_suite: Path) -> None:
    loaded = load_suite(tiny_suite, [
        "grid.exclude[0]=*/lp",
        "grid.include[0]={init: rnd, chain: [sup], protocol: lp}",
        "grid.include[1]={init: rnd, chain: [sup], protocol: ft}",
    ], env={})
    cells = ["+".join([i, *c]) + "/" + p for i, c, p in expand_cells(loaded.suite)]
    # include adds rnd+sup/lp, but exclude (applied last) removes every */lp; ft is not doubled
    assert cells == ["rnd+sup/ft", "rnd+sup+bt/ft"]


def test_shared_stage_has_one_node(tiny_suite: Path) -> None:
    plan = _plan(tiny_suite)
    # both rnd+sup cells and the parent of rnd+sup+bt use one 'sup' stage
    assert len({c.encoder_key for c in plan.cells}) == 2
    deps = plan.dependencies()
    bt = plan.stages[1]
    assert deps[bt.key] == [plan.stages[0].key]
    assert all(deps[t.key] == [t.cell.stage_key] for t in plan.trials)


def _keys(plan) -> dict[str, str]:
    out = {s.label: s.key for s in plan.stages}
    out.update({c.name: c.key for c in plan.cells})
    out.update({f"{t.cell.name}#{t.seed}": t.key for t in plan.trials})
    return out


def test_keys_are_stable(tiny_suite: Path) -> None:
    assert _keys(_plan(tiny_suite)) == _keys(_plan(tiny_suite))


def test_cosmetic_changes_keep_keys(tiny_suite: Path) -> None:
    base = _keys(_plan(tiny_suite))
    assert _keys(_plan(tiny_suite, "description=something else",
                       "stages.bt.description=renamed in prose",
                       "contrasts[0].label=nice label", "report.title=T")) == base
    # more seeds add trials without changing existing keys
    more = _keys(_plan(tiny_suite, "seeds.count=3"))
    assert {k: more[k] for k in base} == base and len(more) == len(base) + 4


def test_relevant_changes_make_new_keys(tiny_suite: Path) -> None:
    base = _keys(_plan(tiny_suite))
    # a stage field changes that stage, its descendants, their cells and trials
    k = _keys(_plan(tiny_suite, "stages.bt.epochs=2"))
    assert k["rnd+sup"] == base["rnd+sup"]
    assert k["rnd+sup+bt"] != base["rnd+sup+bt"]
    assert k["rnd+sup+bt/ft"] != base["rnd+sup+bt/ft"]
    assert k["rnd+sup/ft"] == base["rnd+sup/ft"]
    # the parent's config reaches every descendant
    k = _keys(_plan(tiny_suite, "stages.sup.params.label_smoothing=0.1"))
    assert k["rnd+sup"] != base["rnd+sup"] and k["rnd+sup+bt"] != base["rnd+sup+bt"]
    # the data: another split seed changes what the stage trains on
    k = _keys(_plan(tiny_suite, "datasets.tgt.split.seed=1"))
    assert k["rnd+sup"] == base["rnd+sup"] and k["rnd+sup+bt"] != base["rnd+sup+bt"]
    # the init's seed
    k = _keys(_plan(tiny_suite, "inits.rnd.seed=1"))
    assert k["rnd+sup"] != base["rnd+sup"]
    # a protocol field changes only that protocol's cells
    k = _keys(_plan(tiny_suite, "protocols.ft.epochs=2"))
    assert k["rnd+sup/ft"] != base["rnd+sup/ft"] and k["rnd+sup/lp"] == base["rnd+sup/lp"]
    # which seed sources vary changes trial keys, not cell keys
    k = _keys(_plan(tiny_suite, "seeds.vary=[head]"))
    assert k["rnd+sup/ft"] == base["rnd+sup/ft"] and k["rnd+sup/ft#0"] != base["rnd+sup/ft#0"]


def test_stage_key_ignores_the_stage_name(tiny_suite: Path) -> None:
    text = tiny_suite.read_text().replace("  bt:\n", "  bt2:\n").replace("[sup, bt]", "[sup, bt2]")
    other = tiny_suite.with_name("renamed.yaml")
    other.write_text(text.replace("rnd+sup+bt/ft", "rnd+sup+bt2/ft"))
    assert _plan(other).stages[1].key == _plan(tiny_suite).stages[1].key


def test_seed_derivation_is_documented_hash() -> None:
    import hashlib

    expected = int(hashlib.sha256(b"bench:head:7").hexdigest()[:16], 16) % 2**63
    assert derive_seed(7, "head") == expected
    s = trial_seeds(7, 0, ["head"])
    assert s["head"] == derive_seed(7, "head") and s["order"] == derive_seed(0, "order")
    assert trial_seeds(3, 0, ["head"])["order"] == s["order"]


def test_declared_image_counts_cost_a_suite_before_its_data_are_in_place(
        tiny_suite: Path, tmp_path: Path, capsys) -> None:
    """A dataset that cannot be read but declares its ``images``: its parts' sizes follow from
    the split (exact for counts and their rest, ≈ for fractions), and `bench plan` costs the
    suite by them; without ``images`` the cost is unknown."""
    from bench.cli import main
    from bench.config.schema import DatasetSpec

    def sizes(split: dict, images: int | None = 100) -> dict[str, int] | None:
        return DatasetSpec.model_validate({"format": "csv", "labels": "x.csv", "images": images,
                                           "split": split}).declared_sizes()

    assert sizes({"counts": {"a": {"x": 3, "y": 4}, "b": {"x": 1}}, "rest": "c"}) == \
        {"a": 7, "b": 1, "c": 92}
    assert sizes({"fractions": {"a": 0.25, "b": 0.75}}) == {"a": 25, "b": 75}
    assert sizes({"fractions": {"a": 0.3}, "rest": "r", "merge": {"all": ["a", "r"]}}) == \
        {"all": 100}
    assert sizes({"column": "split"}) is None and sizes({"fractions": {"a": 1.0}}, None) is None
    missing = tmp_path / "absent.csv"
    tgt = ("datasets.tgt={format: csv, labels: '%s', %s"
           "split: {seed: 0, fractions: {train: 0.5, test: 0.5}}}")
    for declared, expected in (("images: 72, ", "remaining cost ≈"),
                               ("", "remaining cost: unknown")):
        args = ["plan", str(tiny_suite), "--allow-missing", "--set", tgt % (missing, declared)]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert expected in out, out
    assert "declares 72 images: train 36, test 36" not in out
    assert main([*args[:-1], tgt % (missing, "images: 72, ")]) == 0
    out = capsys.readouterr().out
    assert "tgt                  cannot be read (see the missing inputs below); declares 72 " \
        "images: train 36, test 36" in out
    assert "by the image counts that datasets tgt declare" in out
