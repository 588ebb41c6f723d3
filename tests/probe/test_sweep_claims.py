"""Claims and figures train their sweeps through the sweep engine (issue 26, item 4)."""
from __future__ import annotations

import importlib.util
import io
import json

import pytest
import torch

import probe
from probe import claims, sweep
from probe.cli import main

TINY = [sweep.Point("parity", "gru", h, steps=6, seed=0,
                    sets=(("train.batch_size", 8), ("train.eval_n", 16), ("train.eval_splits", ["train"])))
        for h in (4, 6)]


def _weights(store, rid):
    return probe.open_run(rid, store=store).load_checkpoint()[0]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_engine_settings_default_to_this_process_and_nest():
    assert sweep.engine_settings() == sweep.EngineSettings("local", 1, None)
    with sweep.using("ray", address="auto") as outer:
        assert sweep.engine_settings() is outer and outer.engine == "ray"
        with sweep.using("local", 2):
            assert sweep.engine_settings() == sweep.EngineSettings("local", 2, None)
        assert sweep.engine_settings() is outer
    assert sweep.engine_settings() == sweep.EngineSettings()


@pytest.mark.parametrize("kw, message", [({"engine": "slurm"}, "unknown engine 'slurm'; valid engines: local, ray"),
                                         ({"workers": 0}, "workers must be a positive integer; got 0")])
def test_a_bad_engine_setting_is_one_error(kw, message):
    with pytest.raises(ValueError, match=message), sweep.using(**kw):
        pass
    with pytest.raises(ValueError, match=message):
        claims.run([], **kw)


def test_train_points_here_and_on_two_workers_train_the_same_runs(tmp_path, monkeypatch):
    here = tmp_path / "here"
    started = []
    monkeypatch.setattr(sweep, "LocalEngine", lambda *a, **kw: started.append(a) or pytest.fail("no worker expected"))
    runs = sweep.train_points(TINY, here)  # default: this process, one point after another
    assert started == [] and [r.id for r in runs] == [sweep.build(p)[3] for p in TINY]
    listed = json.loads((here / "sweeps" / "points.json").read_text())  # for the explorer's Sweeps page
    assert [p["id"] for p in listed["points"]] == [r.id for r in runs]
    monkeypatch.undo()
    with sweep.using("local", 2):
        pooled = sweep.train_points(TINY, tmp_path / "pool", name="claim")
    assert [r.id for r in pooled] == [r.id for r in runs]
    assert (tmp_path / "pool" / "sweeps" / "claim.json").exists()
    for r in runs:
        assert _same(_weights(here, r.id), _weights(tmp_path / "pool", r.id))


def test_train_points_names_every_failed_point_after_training_the_others(tmp_path):
    bad = sweep.Point("parity", "gru", 4, steps=6, sets=(("train.eval_splits", ["nope"]),))
    with pytest.raises(RuntimeError, match=r"1 of 3 runs failed: .*unknown eval split"):
        sweep.train_points([TINY[0], bad, TINY[1]], tmp_path)
    assert all(probe.open_run(sweep.build(p)[3], store=tmp_path).status == "done" for p in TINY)


def _register(cid: str, group_suffix: str):
    """A claim (in a module of its own, so it is a group of its own) that reports the engine its sweeps get."""
    def fn(profile="quick", store="runs"):
        e = sweep.engine_settings()
        return claims.outcome(measured=[e.engine, e.workers, e.address], expected="-", passed=True)

    fn.__module__ = f"tests.fake_study_{group_suffix}"
    fn.__qualname__ = f"fn_{cid}"
    return claims.claim(cid, source="-", statement="-")(fn)


@pytest.fixture
def fake_claims():
    specs = [_register("fake.one", "a"), _register("fake.two", "b")]
    yield specs
    for s in specs:
        claims._REGISTRY.pop(s.id, None)


def test_verify_workers_go_to_a_single_studys_sweeps_and_to_groups_otherwise(fake_claims, tmp_path):
    one = claims.run(fake_claims[:1], store=str(tmp_path), workers=2, engine="local", progress=False)
    assert one[0].measured == ["local", 2, None]  # one study: its sweeps get both workers
    both = claims.run(fake_claims, store=str(tmp_path), workers=2, progress=False)
    assert [c.measured for c in both] == [["local", 1, None]] * 2  # two studies at once: a core each
    ray = claims.run(fake_claims, store=str(tmp_path), workers=2, engine="ray", address="auto", progress=False)
    assert [c.measured for c in ray] == [["ray", 1, "auto"]] * 2


def test_verify_and_figs_pass_engine_and_address_on(fake_claims, tmp_path, monkeypatch, capsys):
    seen = {}
    real = claims.run
    monkeypatch.setattr(claims, "run", lambda specs, **kw: seen.update(kw) or real(specs, **kw))
    rc = main(["verify", "--only", "fake.one", "--store", str(tmp_path), "--engine", "ray", "--address", "auto"])
    assert rc == 0 and (seen["engine"], seen["address"]) == ("ray", "auto")
    assert "fake.one" in capsys.readouterr().out
    assert main(["verify", "--engine", "slurm"]) == 2
    assert "invalid choice: 'slurm'" in capsys.readouterr().err
    import paper_figs

    inside = []
    monkeypatch.setattr(paper_figs, "make_all", lambda *a, **kw: inside.append(sweep.engine_settings()) or [])
    assert main(["figs", "--only", "parity_phase", "--out", str(tmp_path / "f"), "--workers", "2"]) == 0
    assert inside == [sweep.EngineSettings("local", 2, None)]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra (pip install -e '.[ray]')")
def test_a_claims_sweep_on_a_local_ray_trains_the_runs_it_trains_here(tmp_path):
    import ray

    from tests.probe.test_sweep import _start_ray

    _start_ray(ray, num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with sweep.using("ray"):
            runs = sweep.train_points(TINY, tmp_path / "ray", name="claim", out=io.StringIO())
    finally:
        ray.shutdown()
    here = sweep.train_points(TINY, tmp_path / "here")
    assert [r.id for r in runs] == [r.id for r in here]
    for r in here:
        assert _same(_weights(tmp_path / "here", r.id), _weights(tmp_path / "ray", r.id))


def test_points_trained_piece_by_piece_under_one_name_are_all_listed(tmp_path):
    # a claim trains its sweep, then its champion, under the claim's name: the listing keeps both
    sweep.train_points(TINY[:1], tmp_path, name="claim")
    extra = sweep.Point("parity", "elman", 4, steps=6, sets=(*TINY[0].sets, ("train.lr", 1e-2)))
    sweep.train_points([extra, TINY[0]], tmp_path, name="claim")
    listed = json.loads((tmp_path / "sweeps" / "claim.json").read_text())
    assert [p["id"] for p in listed["points"]] == [sweep.build(p)[3] for p in (TINY[0], extra)]
    assert listed["varying"] == ["arch", "train.lr"] and listed["points"][0]["train.lr"] is None
    assert listed["set_keys"] == ["train.batch_size", "train.eval_n", "train.eval_splits", "train.lr"]
