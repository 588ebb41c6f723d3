"""Per-profile settings and the sweep over architectures x numbers of training automata behind ``regular.icll``.

One run per (architecture, number of training automata): the trainer trains ``members`` seeds
at once. Each member is analysed through ``analyses.analyze("ngram", run, member)``, so results
are cached in the run folder and a second claim, figure or notebook reading the same run does
not compute them again. Every run is scored on the same contexts of the same held-out automata
(the test pool does not depend on ``n_train_automata``; see :mod:`tasks.regular`).

``full`` is closer to the paper (``PAPERS.md`` §6): contexts of 10-19 strings of length 1-49,
AdamW (lr 5e-4, weight decay 0.1, cosine with 10% warmup), batch 32, d 64 and 2 layers, 1k-20k
training automata, three seeds; many CPU hours. ``quick`` runs in about three CPU minutes on
shorter contexts (4-8 strings of 1-10 letters) with small one-layer models (hidden 64, 300
steps, one seed); beside its sweep it trains a *champion* (:class:`Champion`, :func:`champion`),
a one-layer gated DeltaNet of 128 with a short convolution, for 1500 steps, one run per seed.
NOTES.md records what each model reached, Griffin's block included.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import analyses
import tasks
from analyses import base
from analyses.base import renamed
from analyses.ngram import figures as figs
from probe.settings import Settings, profiles, setting, settings_for
from probe.sweep import Point, train_points
from probe.threads import single_thread


@dataclass(frozen=True)
class Model(Settings):
    """One model of a sweep where it departs from the plan's defaults (None: the plan's)."""

    arch: str
    hidden: int | None = setting(None, ge=1)
    layers: int | None = setting(None, ge=1)
    params: dict = setting(factory=dict, doc="architecture options (probe.models.arch_params)")
    steps: int | None = setting(None, ge=1)
    lr: float | None = setting(None, gt=0)


@dataclass(frozen=True)
class Champion(Settings):
    """A longer-trained model beside the sweep, for the claim's "beats the in-context bigram"
    part: one run of one member per seed, at one number of training automata."""

    label: str = setting(doc="a key of the settings' ``models`` (or an architecture)")
    n_train_automata: int = setting(ge=1)
    seeds: tuple[int, ...] = setting()


@dataclass(frozen=True)
class NgramSettings(Settings):
    """How to train and score the models of one profile."""

    archs: tuple[str, ...] = setting(doc="labels: an architecture, or a key of ``models``")
    automata: tuple[int, ...] = setting(doc="numbers of training automata")
    task: dict = setting(factory=dict, doc="regular params (the task's defaults when empty)")
    hidden: int = setting(64, ge=1)
    layers: int = setting(2, ge=1)
    steps: int = setting(20_000, ge=1)
    batch_size: int = setting(32, ge=1)
    lr: float = setting(5e-4, gt=0)
    weight_decay: float = setting(0.1, ge=0)
    warmup_fraction: float = setting(0.1, ge=0, le=1)
    members: int = setting(3, ge=1, doc="seeds per run, trained together")
    n_checkpoints: int = setting(12, ge=1)
    n_eval: int = setting(512, ge=1, doc="held-out contexts each model is scored on")
    models: dict = setting(factory=dict, doc="{label: Model} for labels that are not plain archs")
    champion: Champion | None = setting(None, doc="trained and scored beside the sweep (claim only)")

    def analysis_params(self) -> dict:
        return {"n": self.n_eval}

    def model(self, label: str) -> Model:
        """The model behind ``label``, with the plan's defaults filled in."""
        m = self.models.get(label, Model(label))
        return Model(m.arch, m.hidden or self.hidden, m.layers or self.layers, dict(m.params),
                     m.steps or self.steps, m.lr or self.lr)

    def describe(self) -> str:
        """The setting in words, for a claim's report: contexts, models, steps, seeds, automata."""
        t = {**tasks.make("regular").params, **self.task}
        seeds = f"{self.members} seed{'s' * (self.members > 1)}"
        out = (f"contexts of {t['min_strings']}-{t['max_strings']} strings of {t['min_len']}-{t['max_len']} letters; "
               f"{', '.join(self._words(a) for a in self.archs)}, {self.steps} steps, {seeds}, "
               f"on {' / '.join(map(str, self.automata))} training automata; {t['n_test_automata']} held-out automata, "
               f"{self.n_eval} contexts")
        if self.champion is not None:
            c = self.champion
            out += (f"; champion {self._words(c.label)}, {self.model(c.label).steps} steps on {c.n_train_automata} "
                    f"training automata, seed{'s' * (len(c.seeds) > 1)} {', '.join(map(str, c.seeds))}")
        return out

    def _words(self, label: str) -> str:
        m = self.model(label)
        opts = "".join(f" {k}={v}" for k, v in m.params.items())
        return f"{label} ({m.arch}{opts}, {m.layers}x{m.hidden})" if label != m.arch or opts else f"{m.arch} {m.layers}x{m.hidden}"


# Hawk as Griffin's recurrent block has it, with the short convolution (width 4) before the
# recurrence, which hands each layer products of neighbouring tokens (the pair counts an
# in-context bigram needs). Its own sigmoid gates learned faster here than bilinear ones (the
# form in which a gated RNN expresses linear attention, Zucchet et al.): see NOTES.md.
GRIFFIN = Model("hawk", hidden=320, layers=2, lr=2e-3, params={"conv": 4})

# The quick profile's champion: a gated DeltaNet with its short convolution (width 4), whose
# delta-rule state is an associative memory of (previous token -> next token) pairs, the counts
# an in-context bigram keeps. Griffin's block needs ~9000 steps of two layers of 320 to beat the
# bigram here (~26 CPU minutes); this one beats it in ~100 CPU seconds. See NOTES.md.
DELTANET = Model("deltanet", hidden=128, layers=1, lr=3e-3, steps=1500, params={"conv": 4})

SETTINGS = profiles(
    # ~3 CPU minutes in all: the sweep (one seed) ~1 min, the champion (one seed) ~1.5 min
    quick=NgramSettings(archs=("gru", "lstm", "hawk"), automata=(8, 64, 1024),
                        task={"min_strings": 4, "max_strings": 8, "max_len": 10, "n_test_automata": 200},
                        hidden=64, layers=1, steps=300, lr=1e-2, members=1, n_checkpoints=6, n_eval=256,
                        models={"deltanet": DELTANET}, champion=Champion("deltanet", 16_384, seeds=(1,))),
    full=NgramSettings(archs=("gru", "lstm", "hawk", "lru", "griffin"), automata=(1000, 2500, 5000, 10_000, 20_000),
                       task={"min_strings": 10, "max_strings": 19, "max_len": 49, "n_test_automata": 500},
                       models={"griffin": GRIFFIN}),
)


def settings(profile: str) -> NgramSettings:
    """The settings of ``profile`` ("quick" or "full")."""
    return settings_for(SETTINGS, profile)


__getattr__ = renamed(globals(), {"Plan": "NgramSettings", "PLANS": "SETTINGS", "plan": "settings"})


def task_for(p: NgramSettings, n_train_automata: int):
    return tasks.make("regular", n_train_automata=n_train_automata, **p.task)


def point(label: str, n_train_automata: int, p: NgramSettings, seed: int = 0, members: int | None = None) -> Point:
    """One cell of a sweep (``members``, default ``p.members``, seeds trained together) as a
    :class:`probe.sweep.Point`: ``probe train``'s arguments, hence its run id; ``label`` is an
    architecture or a key of ``p.models``."""
    m = p.model(label)
    task = {"n_train_automata": n_train_automata, **p.task}
    train = {"batch_size": p.batch_size, "lr": m.lr, "schedule": "cosine", "warmup": int(p.warmup_fraction * m.steps),
             "weight_decay": p.weight_decay, "n_checkpoints": p.n_checkpoints, "eval_splits": ["test"]}
    sets = tuple((f"task.{k}", v) for k, v in task.items()) + tuple((f"model.{k}", v) for k, v in m.params.items()) \
        + tuple((f"train.{k}", v) for k, v in train.items())
    return Point("regular", m.arch, m.hidden, layers=m.layers, members=members or p.members, steps=m.steps,
                 seed=seed, sets=sets)


def points(p: NgramSettings, seed: int = 0) -> list[Point]:
    """Every run a profile trains: the sweep's cells, then one single-member run per champion seed."""
    out = [point(label, count, p, seed) for label in p.archs for count in p.automata]
    if p.champion is not None:
        c = p.champion
        out += [point(c.label, c.n_train_automata, p, seed=s, members=1) for s in c.seeds]
    return out


def train(profile: str | NgramSettings = "quick", store: str = "runs", seed: int = 0, name: str = "regular.icll") -> list:
    """Train (or load) every run of a profile in one :func:`probe.sweep.train_points` call (so
    ``probe verify --workers N`` or ``--engine ray`` spreads them); returns the runs in
    :func:`points` order."""
    p = profile if isinstance(profile, NgramSettings) else settings(profile)
    return train_points(points(p, seed), store=store, name=name)


def train_run(label: str, n_train_automata: int, p: NgramSettings, store: str = "runs", seed: int = 0,
              members: int | None = None):
    """Train (or load, if the store has it) the ensemble of ``members`` (default ``p.members``)
    seeds of one cell; ``label`` is an architecture or a key of ``p.models``."""
    return train_points([point(label, n_train_automata, p, seed, members)], store=store, name="regular.icll")[0]


def sweep(profile: str | NgramSettings = "quick", store: str = "runs", archs=None, seed: int = 0) -> tuple[list[dict], dict]:
    """Train every (architecture, number of automata) cell of a profile (or any :class:`NgramSettings`) and
    analyse every member.

    Returns
    -------
    rows : one per (arch, n_train_automata, member) with ``accuracy``, ``accuracy_with_sep``,
        ``tvd`` (to the DFA), ``tvd_ngram`` {n: TVD}, ``closest``, ``probe`` and ``run`` (its id)
    baselines : {n: accuracy, accuracy_with_sep, tvd} of the in-context n-gram predictors on the
        same contexts
    """
    p = profile if isinstance(profile, NgramSettings) else settings(profile)
    rows, base = [], {}
    labels = archs or p.archs
    with single_thread():
        runs = train_points([point(a, c, p, seed) for a in labels for c in p.automata], store=store, name="regular.icll")
        for run, (arch, count) in zip(runs, [(a, c) for a in labels for c in p.automata]):
            for m in range(p.members):
                row, base = _score(run, arch, count, m, p)
                rows.append(row)
    return rows, base


def champion(profile: str | NgramSettings = "quick", store: str = "runs") -> tuple[list[dict], dict]:
    """Train (or load) the plan's champion, one single-member run per seed, and score each as a
    sweep cell is scored (same held-out contexts); ``([], {})`` when the plan has none.

    Returns rows like :func:`sweep`'s (``member`` is the index into ``seeds``, ``seed`` the seed)
    and the baselines on the same contexts.
    """
    p = profile if isinstance(profile, NgramSettings) else settings(profile)
    c = p.champion
    if c is None:
        return [], {}
    rows, base = [], {}
    with single_thread():
        runs = train_points([point(c.label, c.n_train_automata, p, seed=s, members=1) for s in c.seeds],
                            store=store, name="regular.icll")
        for i, (seed, run) in enumerate(zip(c.seeds, runs)):
            row, base = _score(run, c.label, c.n_train_automata, 0, p)
            rows.append({**row, "member": i, "seed": seed})
    return rows, base


_champion = champion  # for sweep_figures, whose flag of the same name shadows it


def _score(run, label: str, count: int, member: int, p: NgramSettings) -> tuple[dict, dict]:
    """One member's cached ngram analysis as a sweep row, and the baselines it was scored against."""
    r = analyses.analyze("ngram", run, member=member, **p.analysis_params())
    s = r.scores
    row = {"arch": label, "n_train_automata": count, "member": member,
           "accuracy": s["accuracy"], "accuracy_with_sep": s["accuracy_with_sep"],
           "tvd": s["tvd"]["dfa"], "tvd_ngram": {k: v for k, v in s["tvd"].items() if k != "dfa"},
           "closest": s["closest"], "probe": r.probe.get("accuracy"),
           "probe_control": r.probe.get("token_control"), "run": run.id}
    base = {k: {m: b[m] for m in ("accuracy", "accuracy_with_sep", "tvd")} for k, b in r.baselines.items()}
    return row, base


def mean_by(rows: list[dict], key: str, arch: str) -> dict[int, float]:
    """{n_train_automata: mean of row[key] over the members} for one architecture."""
    out: dict[int, list[float]] = {}
    for r in rows:
        if r["arch"] == arch:
            out.setdefault(r["n_train_automata"], []).append(r[key])
    return {c: sum(v) / len(v) for c, v in sorted(out.items())}


# accuracy against the number of training automata: drops of up to 0.02 are noise, a rise needs at least 0.05
rises = functools.partial(base.rises, tolerance=0.02, min_rise=0.05)


def sweep_figures(profile: str = "quick", store: str = "runs", champion: bool = False) -> dict:
    """The paper's main plot from the claim's sweep: accuracy and TVD against number of training
    automata per architecture (``"sweep"``: both panels; ``"accuracy"``, ``"tvd"``: one each).

    ``champion=True`` adds the champion (see :func:`champion`) as one more point, the mean over
    its seeds; it is trained on first use (in the quick profile about 90 CPU seconds, unless the
    claim has already trained it into ``store``).
    """
    rows, baselines = sweep(profile, store)
    if champion:
        rows = rows + _champion(profile, store)[0]
    return {"sweep": figs.sweep_figure(rows, baselines, f"In-context regular languages, held-out automata ({profile})"),
            "accuracy": figs.versus_automata(rows, baselines, "accuracy", f"Accuracy on held-out automata ({profile})"),
            "tvd": figs.versus_automata(rows, baselines, "tvd", f"TVD to the DFA on held-out automata ({profile})")}
