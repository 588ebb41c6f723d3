"""analyses.parallel: Newton iterations of a trained GRU, against length and training step."""
import pytest
import torch

import analyses
import probe
import tasks
from analyses.parallel import ParallelResult, analyze, count

TASK = tasks.make("parity", max_len=8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model = probe.models.make("gru", TASK, hidden=8, seed=0)
    return probe.train(TASK, model, store=tmp_path_factory.mktemp("runs"), progress=False, steps=40, batch_size=32,
                       lr=1e-2, eval_splits=["train"], eval_n=64)


def test_iterations_are_counted_bounded_by_T_and_the_solution_is_the_loops(run):
    model = run.model()
    r = analyze(model, TASK, lengths=(8, 32), n=4)
    assert r.lengths == [8, 32]
    for method in ("deer", "quasi"):
        assert all(1 <= k <= T for k, T in zip(r.by_length[method], r.lengths, strict=True)), r.by_length
    # Newton with the dense Jacobian never needs more steps than its diagonal approximation here
    assert all(d <= q for d, q in zip(r.by_length["deer"], r.by_length["quasi"], strict=True)), r.by_length
    assert r.summary["max_error"] < 1e-3 and not r.data["fallbacks"]   # float32, tolerance 1e-4
    assert model.layers[0].solver == "sequential"                       # left as it was
    back = ParallelResult.from_dict(r.to_dict())
    assert back.by_length == r.by_length and set(back.figures()) == {"iterations_vs_length"}


def test_a_stopped_solve_is_counted_as_max_iter_and_flagged(run):
    model = run.model()
    x = TASK.sample(n=4, seed=0, length=64).inputs
    row = count(model, x, "quasi", max_iter=1)
    assert row == {**row, "iterations": 1, "converged": False, "fallback": True}
    assert row["max_error"] < 1e-5                                       # the loop's answer


def test_over_training_through_the_registry(run):
    r = analyses.analyze("parallel", run, lengths=[8, 32], step_length=32, n=4, max_checkpoints=5)
    steps = list(run.checkpoint_steps)
    assert len(steps) > 5 and len(r.steps) == 5 and r.steps[0] == steps[0] and r.steps[-1] == steps[-1]
    assert set(r.steps) <= set(steps)
    assert all(len(v) == len(r.steps) for v in r.by_step.values())
    assert set(r.figures()) == {"iterations_vs_length", "iterations_vs_step"}


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="plain model"):
        analyze(probe.models.make("gru", TASK, hidden=4, members=2), TASK)
    with pytest.raises(ValueError, match="no Newton solver"):
        analyze(probe.models.make("mingru", TASK, hidden=4), TASK)
    with pytest.raises(ValueError, match="unknown method 'jacobi'"):
        analyze(probe.models.make("gru", TASK, hidden=4), TASK, methods=("jacobi",))
    torch.manual_seed(0)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_claims_points_are_the_runs_trained_trained(profile, tmp_path, run_id_of):
    """parallel.predictability's GRUs built as sweep Points (issue 26) have the run ids ``trained``
    gave them before it trained through the sweep engine: stores keep their runs."""
    from analyses.parallel import claims as pc
    from probe import sweep

    s = pc.settings(profile)

    def before(task_name):  # trained as it was
        task = tasks.make(task_name, **pc.TASKS[task_name])
        model = probe.models.make("gru", task, hidden=s.hidden, seed=0)
        probe.train(task, model, store=str(tmp_path), progress=False, steps=s.steps, batch_size=64, lr=1e-2,
                    eval_splits=["train"], eval_n=256)

    seen = []
    for name in pc.TASKS:
        seen.append(run_id_of(lambda n=name: before(n)))
        assert seen[-1] == sweep.build(pc.point(name, s))[3], name
    assert len(set(seen)) == len(pc.TASKS) == 2
