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
