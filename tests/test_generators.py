"""Generators and replay: the CVAE's math, the generator contract, feature replay,
generative replay (inductive by default), and two-task runs with each."""

from __future__ import annotations

import json

import pytest
import torch
from avalanche.core import SupervisedPlugin

from czsl.config import ProtocolConfig, load_scenario
from czsl.data.synthetic import make_synthetic
from czsl.errors import ConfigError, PluginError
from czsl.generators import CheckedGenerator, GeneratorLosses
from czsl.learner import ZSLLearner
from tests.conftest import Tiny
from czsl.plugins import Plugins
from czsl.report import format_table, load_runs
from czsl.build import build_run
from czsl.results import format_results
from czsl.run import run_scenario
from czsl.streams import build_stream
from czsl_plugins import anti_collapse, cvae, fclswgan
from tests.conftest import write_plugin_package

QUIET = {"progress": False, "echo": lambda _: None}
#: three small tasks; classes 8 and 9 are never trained (unseen at every step)
TINY = ["data.synthesis.n_classes=10", "data.synthesis.samples_per_class=12",
        "data.synthesis.n_features=8", "data.synthesis.n_attributes=4",
        "data.synthesis.n_unseen=2", "protocol.task_sizes=[3, 3, 2]", "train.epochs=2",
        "model.hidden_dims=[16]", "train.loss_classes='seen'"]
FAST_CVAE = ["generator.epochs=3", "generator.hidden=32", "generator.latent_dim=4",
             "replay.replay_per_class=10"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: torch's intra-op threads only spin against each other (on a busy
    2-core machine a CVAE step took 100x longer with 2 threads than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def stream():
    data = make_synthetic(n_classes=10, n_attributes=4, n_features=8, samples_per_class=20,
                          n_unseen=2, seed=0)
    return Tiny(build_stream(data, ProtocolConfig(name="grw", task_sizes=[3, 3, 2]), seed=0))


def _learner(stream, plugins, epochs=1):
    torch.manual_seed(0)
    model = Plugins().make("model", "attribute_embedder", {"hidden_dims": [16]},
                           n_features=8, attributes=stream.attributes)
    return stream.learner(plugins, model=model, train_mb_size=16, loss_classes="seen",
                          train_epochs=epochs,
                          optimizer=torch.optim.SGD(model.parameters(), lr=1e-2))


class _Batches(SupervisedPlugin):
    """Records each training mini-batch's labels, by task."""

    def __init__(self):
        super().__init__()
        self.batches = {}

    def before_forward(self, strategy, *args, **kwargs):
        step = strategy.experience.current_experience
        self.batches.setdefault(step, []).append(strategy.mb_y.tolist())

    @property
    def labels(self) -> dict[int, set[int]]:
        """The labels each task's mini-batches held."""
        return {step: {y for batch in batches for y in batch}
                for step, batches in self.batches.items()}


# ------------------------------------------------------------------------ CVAE math


def test_gaussian_kl_is_the_closed_form_and_zero_only_at_equality():
    g = torch.Generator().manual_seed(0)
    mu_q, lv_q, mu_p, lv_p = (torch.randn(5, 3, generator=g) for _ in range(4))
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_q, (0.5 * lv_q).exp()),
        torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())).sum(-1)
    assert torch.allclose(cvae.gaussian_kl(mu_q, lv_q, mu_p, lv_p), want, atol=1e-5)
    assert torch.allclose(cvae.gaussian_kl(mu_q, lv_q, mu_q, lv_q), torch.zeros(5), atol=1e-6)
    # broadcasting [B, 1, L] x [1, C, L] -> [B, C]
    assert cvae.gaussian_kl(mu_q[:, None], lv_q[:, None], mu_p[None], lv_p[None]).shape == (5, 5)


def test_the_kl_matrix_and_fast_math_loss_match_the_broadcast_form():
    g = torch.Generator().manual_seed(1)
    mu_q, lv_q = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    mu_p, lv_p = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    want = cvae.gaussian_kl(mu_q[:, None], lv_q[:, None], mu_p[None], lv_p[None])
    assert torch.allclose(cvae.gaussian_kl_matrix(mu_q, lv_q, mu_p, lv_p), want, atol=1e-5)
    x, recon = torch.rand(6, 3, generator=g), torch.rand(6, 3, generator=g)
    own = torch.tensor([0, 1, 2, 3, 4, 0])
    grads = []
    for fast in (False, True):
        params = [t.clone().requires_grad_() for t in (mu_q, lv_q, mu_p, lv_p)]
        losses = cvae.cvae_loss(x, recon, *params, own, margin=3.0, margin_weight=0.5,
                                fast_math=fast)
        losses[0].backward()
        grads.append((torch.stack(losses).detach(), [p.grad for p in params]))
    (slow, slow_grads), (fast, fast_grads) = grads
    assert slow[3] > 0  # the margin is active, so its matrix is exercised
    assert torch.allclose(slow, fast, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(slow_grads, fast_grads))


def test_cvae_fast_math_uses_fused_adam_only_when_asked(monkeypatch):
    made = []
    adam = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam",
                        lambda params, **kw: made.append(kw) or adam(params, **kw))
    x, a, _, _ = _class_data(n_per_class=4)
    for fast in (False, True):
        cvae.CVAE(8, 4, latent_dim=2, hidden=8, epochs=1, fast_math=fast).fit(x, a)
    assert [kw.get("fused") for kw in made] == [None, True]


def test_margin_loss_is_a_hinge_on_the_nearest_other_class():
    kl = torch.tensor([[0.0, 5.0, 3.0], [2.0, 2.5, 9.0]])
    own = torch.tensor([0, 1])
    # sample 0: own 0, nearest other 3 -> max(0, 1 + 0 - 3) = 0
    # sample 1: own 2.5, nearest other 2 -> max(0, 1 + 2.5 - 2) = 1.5
    assert cvae.margin_loss(kl, own, 1.0).item() == pytest.approx(0.75)
    assert cvae.margin_loss(kl, own, 0.0).item() == pytest.approx(0.25)
    assert cvae.margin_loss(kl[:, :1], own * 0, 1.0).item() == 0.0  # one class: no margin


def _class_data(n_per_class=60, seed=0):
    """Four classes, features a non-negative function of the attributes plus noise."""
    g = torch.Generator().manual_seed(seed)
    attrs = torch.rand(4, 4, generator=g)  # [C, A]
    means = torch.nn.functional.softplus(attrs @ torch.randn(4, 8, generator=g) * 3)  # [C, D]
    y = torch.arange(4).repeat_interleave(n_per_class)
    x = (means[y] + 0.1 * torch.randn(len(y), 8, generator=g)).clamp_min(0)
    return x, attrs[y], attrs, means


def _distance_to_means(generator, attrs, means, n=200):
    sample = generator.sample(attrs, n).reshape(len(attrs), n, -1).mean(1)  # [C, D]
    return (sample - means).norm(dim=1).mean().item()


def test_cvae_samples_move_to_the_class_means():
    torch.manual_seed(0)
    x, a, attrs, means = _class_data()
    gen = cvae.CVAE(8, 4, latent_dim=4, hidden=64, epochs=40, batch_size=32)
    before = _distance_to_means(gen, attrs, means)
    gen.fit(x, a)
    after = _distance_to_means(gen, attrs, means)
    assert after < 0.25 * before, (before, after)
    assert (gen.sample(attrs, 5) >= 0).all()  # softplus output, like ResNet features


def test_cvae_rejects_bad_options():
    with pytest.raises(PluginError, match="does not take the option 'latnet_dim'"):
        Plugins().make("generator", "cvae", {"latnet_dim": 3}, n_features=8, n_attributes=4)
    with pytest.raises(PluginError, match="latent_dim must be a positive integer"):
        Plugins().make("generator", "cvae", {"latent_dim": 0}, n_features=8, n_attributes=4)


# ------------------------------------------------------- f-CLSWGAN, anti-collapse


def test_gradient_penalty_of_a_linear_critic_is_its_norm_gap():
    # D(x, a) = w . [x; a]: grad_x D = w[:D] everywhere, so GP = (||w[:D]|| - 1)^2
    critic = torch.nn.Linear(5, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 7.0, 7.0]]))  # ||w[:3]|| = 5
    real, fake, attrs = torch.rand(6, 3), torch.rand(6, 3), torch.rand(6, 2)
    gp = fclswgan.gradient_penalty(critic, real, fake, attrs)
    assert gp.item() == pytest.approx(16.0)


def _diversity(generator, attrs, n=100):
    """Mean per-dimension standard deviation of ``n`` samples of each class."""
    return generator.sample(attrs, n).reshape(len(attrs), n, -1).std(1).mean().item()


def _fit_gan(seed, losses=None):
    torch.manual_seed(seed)
    x, a, attrs, means = _class_data()
    gen = fclswgan.FCLSWGAN(8, 4, hidden=64, epochs=30, batch_size=32, lr=1e-3,
                            cls_epochs=20, losses=losses)
    before = _distance_to_means(gen, attrs, means)
    gen.fit(x, a)
    return gen, before, _distance_to_means(gen, attrs, means), attrs


def test_fclswgan_samples_move_to_the_class_means():
    gen, before, after, attrs = _fit_gan(0)
    # measured: 6.7 -> 2.7; dead ReLU output units (the published ReLU output) keep
    # some dimensions at 0, so the GAN gets less close than the CVAE
    assert after < 0.5 * before, (before, after)
    assert (gen.sample(attrs, 5) >= 0).all()  # ReLU output


def test_fclswgan_caps_cpu_fits_only_and_says_what_share_ran():
    gen = fclswgan.FCLSWGAN(8, 4, hidden=8, epochs=10, batch_size=8, cls_epochs=1,
                            cpu_max_iterations=3)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # only the device's type is read
    assert (gen.capped(40, cpu), gen.capped(40, gpu), gen.capped(2, cpu)) == (3, 40, 2)
    gen.max_iterations = 5
    assert (gen.capped(40, cpu), gen.capped(40, gpu)) == (3, 5)
    gen.max_iterations = 0
    assert gen.notes == []  # nothing capped yet
    x, a, _, _ = _class_data(n_per_class=10)  # 40 samples: 10 epochs x 5 steps scheduled
    gen.fit(x, a)
    gen.fit(x, a)
    assert gen.notes == ["f-CLSWGAN ran 6 of the 100 generator steps of its schedule (6.0%; "
                         "2 of its fits capped by max_iterations = 0 / cpu_max_iterations = "
                         "3, where 0 is no cap): its features are those of a partly trained GAN"]
    full = fclswgan.FCLSWGAN(8, 4, hidden=8, epochs=1, batch_size=8, cls_epochs=1)
    full.fit(x, a)
    assert full.notes == []


@pytest.mark.parametrize("notes", ["one string", [1], {"a": "b"}])
def test_generator_notes_must_be_strings(notes):
    class Noted:
        def fit(self, features, attributes): pass
        def sample(self, attributes, n): pass
        def to(self, device): return self

    gen = Noted()
    gen.notes = notes
    with pytest.raises(PluginError, match="generator 'noted'.*must be a list of strings"):
        CheckedGenerator(gen, "generator 'noted'", 8).notes()
    gen.notes = ["fine"]
    assert CheckedGenerator(gen, "generator 'noted'", 8).notes() == ["fine"]


def test_anti_collapse_raises_sample_diversity():
    plain, *_ = _fit_gan(1)
    loss = anti_collapse.AntiCollapse(weight=0.02)
    diverse, *_, attrs = _fit_gan(1, GeneratorLosses([("anti_collapse", loss)]))
    # same seed, data and schedule; measured 0.13 -> 0.92 (seeds 0-2: at least 5x)
    assert _diversity(diverse, attrs) > 3 * _diversity(plain, attrs)


def test_diversity_ratio_is_zero_for_a_collapsed_generator():
    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    same = torch.rand(10, 6)
    assert anti_collapse.diversity_ratio(same, same, z1, z2).item() == pytest.approx(0, abs=1e-6)
    assert anti_collapse.diversity_ratio(torch.rand(10, 6), torch.rand(10, 6), z1, z2) > 0


@pytest.mark.parametrize("kind, name, options, words", [
    ("generator", "fclswgan", {"hiden": 8}, "does not take the option 'hiden'"),
    ("generator", "fclswgan", {"critic_steps": 0}, "critic_steps must be a positive integer"),
    ("generator", "fclswgan", {"beta1": 1.0}, r"beta1 must be a finite number in \[0, 1\)"),
    ("generator_loss", "anti_collapse", {"weight": -1}, "weight must be a finite number >= 0"),
    ("generator_loss", "anti_collaps", {}, "unknown generator_loss 'anti_collaps'.*Did you mean"),
])
def test_generator_and_loss_options_are_checked(kind, name, options, words):
    with pytest.raises(PluginError, match=words):
        Plugins().make(kind, name, options, n_features=8, n_attributes=4)


FAST_GAN = ["generator=fclswgan", "generator.hidden=16", "generator.epochs=1",
            "generator.cls_epochs=1", "generator.max_iterations=2", "generator.batch_size=16",
            "replay.replay_per_class=5"]


def test_a_run_with_fclswgan_and_an_add_on_loss(tmp_path, monkeypatch):
    calls = []
    call = anti_collapse.AntiCollapse.__call__
    monkeypatch.setattr(anti_collapse.AntiCollapse, "__call__",
                        lambda self, batch: calls.append(batch.fake.shape) or call(self, batch))
    res = _run(tmp_path, "protocol.task_sizes=[4, 4]", "replay=generative_replay", *FAST_GAN,
               "generator.losses=[{name='anti_collapse', weight=0.1}]",
               "generator.max_iterations=0", "generator.cpu_max_iterations=2")
    assert res.results["generator"] == "fclswgan" and res.results["n_tasks"] == 2
    assert calls == [(16, 8)] * 4  # 2 tasks x 2 capped steps (on this CPU), batch 16
    saved_notes = json.loads((res.run_dir / "results.json").read_text())["notes"]
    assert [n for n in saved_notes if n.startswith("f-CLSWGAN ran 4 of the ")] != []
    saved = load_scenario(res.run_dir / "scenario.toml")  # the run can be repeated
    assert saved.generator.options["losses"] == [{"name": "anti_collapse", "weight": 0.1}]


@pytest.mark.parametrize("losses, error, words", [
    ("'anti_collapse'", ConfigError, "losses must be a list of tables with a name"),
    ("[{weight=1}]", ConfigError, "losses must be a list of tables with a name"),
    ("[{name='anti_colapse'}]", PluginError, "unknown generator_loss 'anti_colapse'"),
    ("[{name='anti_collapse', wieght=1}]", PluginError,
     r"does not take the option 'wieght'.*an entry of the scenario's \[generator\] losses"),
])
def test_bad_generator_losses_fail_before_training(tmp_path, losses, error, words):
    with pytest.raises(error, match=words):
        _run(tmp_path, "replay=generative_replay", *FAST_CVAE, f"generator.losses={losses}")
    assert not any(tmp_path.iterdir())  # nothing half-written


LOSS_PLUGINS = """
import torch
from czsl import Component, hookimpl

@hookimpl
def czsl_components():
    return [Component("generator", "oldgen", "takes no losses"),
            Component("generator_loss", "nanloss", "returns NaN")]

@hookimpl
def czsl_make_generator(name, options, n_features):
    if name == "oldgen":
        from czsl_plugins.cvae import CVAE
        return CVAE(n_features, 4, epochs=1, hidden=8, latent_dim=2)

@hookimpl
def czsl_make_generator_loss(name, options):
    if name == "nanloss":
        return nan_loss

def nan_loss(batch):  # module level: it pickles with the generator's checkpoint
    return batch.fake.sum() * float("nan")
"""


def test_loss_plugins_that_break_are_named(tmp_path, plugin_dir):
    write_plugin_package(plugin_dir, "czsl-lossy", "czsl_test_lossy",
                         {"lossy": "czsl_test_lossy"}, LOSS_PLUGINS)
    with pytest.raises(PluginError, match="generator 'oldgen' .*takes no add-on losses"):
        _run(tmp_path / "a", "replay=generative_replay", "generator=oldgen",
             "generator.losses=[{name='anti_collapse'}]")
    with pytest.raises(PluginError) as info:
        _run(tmp_path / "b", "replay=generative_replay", *FAST_CVAE,
             "generator.losses=[{name='nanloss'}]")
    assert "generator loss 'nanloss' (plugin 'lossy' from czsl-lossy 0.1)" in str(info.value)
    assert "returned nan" in str(info.value)


# -------------------------------------------------------------- generator contract


class _Wrong:
    def __init__(self, mode):
        self.mode = mode

    def to(self, device):
        return self

    def fit(self, features, attributes):
        if self.mode == "raise":
            raise RuntimeError("boom")

    def sample(self, attributes, n):
        if self.mode == "inf":
            return torch.zeros(attributes.shape[0] * n, 8).index_fill_(0, torch.tensor([2]),
                                                                      float("inf"))
        return torch.zeros(attributes.shape[0] * n, 7) if self.mode == "shape" else [1]


@pytest.mark.parametrize("mode, words", [
    ("shape", ["returned a torch.float32 tensor of shape (6, 7)", "[6, 8]"]),
    ("inf", ["sample() returned 8 NaN or infinite values among its 48: the generator's own "
             "training diverged. Lower its learning rate or epochs"]),
    ("list", ["returned a list"]),
    ("raise", ["failed in _Wrong.fit: RuntimeError: boom"]),
])
def test_contract_breaches_name_the_generator(mode, words):
    gen = CheckedGenerator(_Wrong(mode), "generator 'g' (plugin 'p' from pkg 1.0)", 8)
    with pytest.raises(PluginError) as info:
        gen.fit(torch.zeros(2, 8), torch.zeros(2, 4))
        gen.sample(torch.zeros(3, 4), 2)
    assert str(info.value).startswith("generator 'g' (plugin 'p' from pkg 1.0)")
    for word in words:
        assert word in str(info.value)
    with pytest.raises(PluginError, match="without fit, sample"):
        CheckedGenerator(object(), "generator 'g'", 8)


def test_unknown_generator_name_lists_the_installed_ones():
    with pytest.raises(PluginError, match="unknown generator 'cvea'.*cvae.*Did you mean"):
        build_run(load_scenario(None, TINY + ["generator=cvea"]), echo=lambda _: None)


# ------------------------------------------------------------------- feature replay


def test_feature_replay_buffer_is_class_balanced_and_replayed(stream, no_generator):
    [replay] = Plugins().make("replay", "feature_replay", {"mem_size": 30}, stream=stream.view,
                              make_generator=no_generator)
    spy = _Batches()
    learner = _learner(stream, [replay, spy])
    stream.train(learner, 0)
    stream.train(learner, 1)
    sizes = {c: len(group.buffer) for c, group in replay.storage_policy.buffer_groups.items()}
    assert sizes == {c: 5 for c in (*stream.tasks[0], *stream.tasks[1])}
    assert spy.labels[0] == set(stream.tasks[0])
    # task 1's mini-batches hold the buffered classes of task 0 as well
    assert spy.labels[1] == set(stream.tasks[0]) | set(stream.tasks[1])


# ----------------------------------------------------------------- generative replay


class _Spy:
    """A generator that records every attribute row it is given, with the task."""

    def __init__(self):
        self.fits = 0
        self.seen = []  # (task, "fit" | "sample", attribute row)

    def to(self, device):
        return self

    def fit(self, features, attributes):
        self.seen += [(self.fits, "fit", tuple(a.tolist())) for a in attributes]
        self.fits += 1

    def sample(self, attributes, n):
        self.seen += [(self.fits, "sample", tuple(a.tolist())) for a in attributes]
        return torch.rand(attributes.shape[0] * n, 8)


@pytest.mark.parametrize("transductive", [False, True])
def test_generative_replay_reads_only_seen_attributes_unless_transductive(stream,
                                                                          transductive):
    spy_gen, labels = _Spy(), _Batches()
    [replay] = Plugins().make("replay", "generative_replay",
                              {"replay_per_class": 4, "semantic_transductive": transductive},
                              stream=stream.view,
                              make_generator=lambda: CheckedGenerator(spy_gen, "spy", 8))
    learner = _learner(stream, [replay, labels])
    for step in range(stream.n_tasks):
        stream.train(learner, step)
    row_class = {tuple(a.tolist()): c for c, a in enumerate(stream.attributes)}
    assert len(row_class) == stream.n_classes  # rows tell classes apart
    task_of = stream.class_to_task.tolist()
    leaks = [(t, how, row_class[row]) for t, how, row in spy_gen.seen
             if not 0 <= task_of[row_class[row]] <= t]
    # replay samples past classes, then the generator fits task t plus that replay
    past_sampled = {(t, row_class[r]) for t, how, r in spy_gen.seen if how == "sample"
                    and 0 <= task_of[row_class[r]] < t}
    assert past_sampled == {(t, c) for t in (1, 2) for tt in range(t) for c in stream.tasks[tt]}
    for t in range(stream.n_tasks):
        seen_so_far = {c for tt in range(t + 1) for c in stream.tasks[tt]}
        assert {row_class[r] for tt, how, r in spy_gen.seen if tt == t and how == "fit"} \
            == seen_so_far
    if transductive:
        assert leaks and all(how == "sample" for _, how, _ in leaks)
        assert 9 in labels.labels[0]  # a never-trained class, synthesised for the classifier
    else:
        assert leaks == []
        for t in range(stream.n_tasks):  # the classifier sees real new + replayed old classes
            assert labels.labels[t] == {c for tt in range(t + 1) for c in stream.tasks[tt]}



def test_batch_mix_joins_replay_to_each_real_mini_batch(stream):
    """``mix = "batch"``: an epoch runs over the task's real features only, each of its
    mini-batches joined by ``batch_size_mem`` replayed ones; ``"concat"`` runs over both.
    The generator's fit set holds ``generator_replay_per_class`` per past class."""
    seen = {}
    for mix in ("concat", "batch"):
        spy_gen, spy = _Spy(), _Batches()
        [replay] = Plugins().make("replay", "generative_replay",
                                  {"replay_per_class": 6, "mix": mix, "batch_size_mem": 5,
                                   "generator_replay_per_class": 2},
                                  stream=stream.view,
                                  make_generator=lambda: CheckedGenerator(spy_gen, "spy", 8))
        learner = _learner(stream, [replay, spy])
        stream.train(learner, 0)
        stream.train(learner, 1)
        seen[mix] = spy.batches
        # task 1's generator fit: its real features plus 2 replayed per task-0 class
        fit_rows = [r for t, how, r in spy_gen.seen if t == 1 and how == "fit"]
        n_real_1 = sum(y in stream.tasks[1] for b in spy.batches[1] for y in b)
        assert len(fit_rows) == n_real_1 + 2 * len(stream.tasks[0])
    past, current = set(stream.tasks[0]), set(stream.tasks[1])
    # concat: 16-sample batches over real + replayed; batch: one 16 + 5 batch per real 16
    assert len(seen["concat"][1]) == -(-(n_real_1 + 6 * len(past)) // 16)
    assert len(seen["batch"][1]) == -(-n_real_1 // 16)
    for batch in seen["batch"][1]:
        assert sum(y in past for y in batch) == 5
        assert set(batch) <= past | current
    assert seen["batch"][0] and all(set(b) <= set(stream.tasks[0]) for b in seen["batch"][0])


@pytest.mark.parametrize("to_classifier", ["real", "both"])
def test_real_buffer_is_grws_and_feeds_the_generator(stream, to_classifier):
    """``real_buffer``: each seen class keeps its first ``real_buffer // classes`` real
    features; the generator fits on the task plus that buffer; with ``to_classifier =
    "real"`` it is never sampled (its features never reach the classifier)."""
    spy_gen, spy = _Spy(), _Batches()
    [replay] = Plugins().make("replay", "generative_replay",
                              {"replay_per_class": 4, "real_buffer": 12,
                               "to_classifier": to_classifier},
                              stream=stream.view,
                              make_generator=lambda: CheckedGenerator(spy_gen, "spy", 8))
    learner = _learner(stream, [replay, spy])
    stream.train(learner, 0)
    x0, y0 = replay.buffer_x.clone(), replay.buffer_y.clone()
    assert sorted(y0.tolist()) == sorted(stream.tasks[0] * 4)  # 12 // 3 classes
    stream.train(learner, 1)
    counts = torch.bincount(replay.buffer_y, minlength=stream.n_classes)
    assert counts.tolist() == [2 if c in (*stream.tasks[0], *stream.tasks[1]) else 0
                               for c in range(stream.n_classes)]  # 12 // 6 classes
    for c in stream.tasks[0]:  # the first of each class's features, kept in order
        assert torch.equal(replay.buffer_x[replay.buffer_y == c], x0[y0 == c][:2])
    fit_1 = [r for t, how, r in spy_gen.seen if t == 1 and how == "fit"]
    n_real_1 = sum(y in stream.tasks[1] for b in spy.batches[1] for y in b)
    assert len(fit_1) == n_real_1 + 12
    sampled = [r for _, how, r in spy_gen.seen if how == "sample"]
    n_past_1 = sum(y in stream.tasks[0] for b in spy.batches[1] for y in b)
    if to_classifier == "real":
        assert sampled == [] and n_past_1 == 12  # the classifier: real task + buffer
    else:
        assert len(sampled) == 3 and n_past_1 == 12 + 3 * 4


def test_real_classifier_replay_needs_a_buffer(stream):
    with pytest.raises(PluginError, match="to_classifier.*set real_buffer"):
        Plugins().make("replay", "generative_replay", {"to_classifier": "real"},
                       stream=stream.view, make_generator=lambda: None)


def test_generator_replay_per_class_is_at_most_replay_per_class(stream):
    with pytest.raises(PluginError, match="generator_replay_per_class.*at most"):
        Plugins().make("replay", "generative_replay",
                       {"replay_per_class": 2, "generator_replay_per_class": 3},
                       stream=stream.view, make_generator=lambda: None)


def _run(tmp_path, *overrides):
    return run_scenario(load_scenario(None, TINY + list(overrides)), runs_dir=tmp_path,
                        **QUIET)


def test_two_task_runs_with_each_replay(tmp_path):
    fr = _run(tmp_path, "protocol.task_sizes=[4, 4]", "replay=feature_replay",
              "replay.mem_size=40")
    assert fr.results["replay"] == "feature_replay" and fr.results["generator"] is None
    gr = _run(tmp_path, "protocol.task_sizes=[4, 4]", "replay=generative_replay",
              *FAST_CVAE)
    assert gr.results["generator"] == "cvae" and gr.results["semantic_transductive"] is False
    assert gr.results["n_tasks"] == 2 and "SEMANTIC-TRANSDUCTIVE" not in format_results(gr)
    # transductive, with a regularizer beside it: recorded and printed
    tr = _run(tmp_path, "protocol.task_sizes=[4, 4]", "replay=generative_replay", *FAST_CVAE,
              "replay.semantic_transductive=true", "regularizer=ewc_online")
    assert tr.results["semantic_transductive"] is True
    assert "SEMANTIC-TRANSDUCTIVE" in format_results(tr)
    table = format_table(load_runs([fr.run_dir, gr.run_dir, tr.run_dir])).splitlines()
    assert [ln.split() for ln in table
            if ln.split()[0] in ("generator", "semantic-transductive")] == [
        ["generator", "-", "cvae", "cvae"], ["semantic-transductive", "no", "no", "YES"]]
    assert "semantic-transductive" not in [
        ln.split()[0] for ln in format_table(load_runs([fr.run_dir, gr.run_dir])).splitlines()]


BAD_GENERATOR = """
import torch
from czsl import Component, hookimpl

@hookimpl
def czsl_components():
    return [Component("generator", "badgen", "breaks the contract")]

@hookimpl
def czsl_make_generator(name, options, n_features):
    if name != "badgen":
        return None
    return Bad(n_features, **options)

class Bad:
    def __init__(self, n_features, mode="shape"):
        self.n_features, self.mode = n_features, mode
    def to(self, device):
        return self
    def fit(self, features, attributes):
        if self.mode == "raise":
            raise ValueError("cannot fit")
    def sample(self, attributes, n):
        if self.mode == "nan":  # its own training diverged
            return torch.full((attributes.shape[0] * n, self.n_features), float("nan"))
        return torch.zeros(attributes.shape[0] * n + 1, self.n_features)
"""


@pytest.mark.parametrize("mode, words", [
    ("shape", "returned a torch.float32 tensor of shape (7, 8)"),
    ("raise", "failed in Bad.fit: ValueError: cannot fit"),
])
def test_a_broken_generator_fails_the_run_naming_plugin_and_package(tmp_path, plugin_dir,
                                                                    mode, words):
    write_plugin_package(plugin_dir, "czsl-badgen", "czsl_test_badgen",
                         {"badgen": "czsl_test_badgen"}, BAD_GENERATOR)
    with pytest.raises(PluginError) as info:
        _run(tmp_path, "replay=generative_replay", "replay.replay_per_class=2",
             "generator=badgen", f"generator.mode='{mode}'")
    message = str(info.value)
    assert message.startswith("generator 'badgen' (plugin 'badgen' from czsl-badgen 0.1)")
    assert words in message
    # "raise" fails in task 0 (nothing saved); "shape" once there is a past class to replay
    assert ("during task 0" if mode == "raise" else "during task 1") in message


def test_a_generator_sampling_nan_is_blamed_not_the_classifier(tmp_path, plugin_dir):
    write_plugin_package(plugin_dir, "czsl-badgen", "czsl_test_badgen",
                         {"badgen": "czsl_test_badgen"}, BAD_GENERATOR)
    with pytest.raises(PluginError) as info:
        _run(tmp_path, "protocol.task_sizes=[4, 4]", "replay=generative_replay",
             "replay.replay_per_class=2", "generator=badgen", "generator.mode='nan'")
    message = str(info.value)
    assert message.startswith("generator 'badgen' (plugin 'badgen' from czsl-badgen 0.1): "
                              "sample() returned 64 NaN or infinite values among its 64")
    assert "training diverged. Lower its learning rate or epochs" in message
    assert "train.lr" not in message  # not the classifier's divergence
    # as for any plugin failure: the finished task stays, resumable
    run_dir = tmp_path / "synthetic"
    assert "(during task 1). In " in message and f"czsl run --resume {run_dir}" in message
    assert (run_dir / "checkpoint").is_dir() and not (run_dir / "results.json").exists()


@pytest.mark.parametrize("overrides", [
    # the generator (its networks) is saved on its own after every task, the replay
    # plugin's state referring to it; enough replay and test data that a generator lost
    # on resume changes the accuracies
    ["replay=generative_replay", *FAST_CVAE, "replay.replay_per_class=60",
     "data.synthesis.samples_per_class=40"],
    # Avalanche's buffer of datasets, per class
    ["replay=feature_replay", "replay.mem_size=30"],
], ids=["generative_replay", "feature_replay"])
def test_interrupted_replay_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch,
                                                                 overrides):
    from czsl.run import resume_run

    reference = _run(tmp_path / "ref", *overrides)
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "runs", *overrides)
    monkeypatch.undo()
    resumed = resume_run(tmp_path / "runs" / "synthetic", **QUIET)
    drop = {"wall_time_s"}
    assert {k: v for k, v in resumed.results.items() if k not in drop} == {
        k: v for k, v in reference.results.items() if k not in drop}


def test_after_a_resume_the_replay_holds_the_generators_the_run_built(tmp_path, monkeypatch):
    from czsl import build
    from czsl.observers import Observer
    from czsl.run import resume_run

    overrides = ["replay=generative_replay", *FAST_CVAE]
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    monkeypatch.setattr(ZSLLearner, "train_task", stop)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, *overrides)
    monkeypatch.undo()
    made = []  # every generator the resumed run builds, in order
    real = build.build_generator

    def recorded(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    class Holds(Observer):
        """What the replay plugin holds when the session starts and after its task."""

        def before_run(self, start):
            self.built = start.built
            self.held = [p.generator for p in start.built.extra if hasattr(p, "generator")]
            self.weights = [w.detach().clone() for m in made[0].generator.modules()
                            for w in m.parameters()]

        def after_task(self, end):
            self.held += [p.generator for p in end.built.extra if hasattr(p, "generator")]

    monkeypatch.setattr(build, "build_generator", recorded)
    holds = Holds()
    resume_run(tmp_path / "synthetic", observers=[holds], **QUIET)
    built = holds.built
    assert len(made) == 1 and built.generators == made
    assert len(holds.held) == 2 and all(held is made[0] for held in holds.held)
    # the object it wraps is the checkpoint's, still blamed on the generator plugin
    assert built.owners[id(made[0].generator)][:2] == ("generator", "cvae")
    # with the checkpoint's state, not the state a fresh build gives it
    fresh = real(build.Plugins(), "cvae", built.scenario.generator.options, 8, 4)
    assert not all(torch.equal(a, b) for a, b in zip(
        holds.weights, (w for m in fresh.generator.modules() for w in m.parameters())))


PER_TASK_REPLAY = """
    import torch
    from avalanche.core import SupervisedPlugin
    from czsl import Component, hookimpl


    class PerTask(SupervisedPlugin):
        \"\"\"A generator per task, built when the task starts; each past class replayed
        by its own task's generator (as DVGR-CZSL).\"\"\"

        def __init__(self, stream, make_generator):
            super().__init__()
            self.stream, self.make_generator, self.owned = stream, make_generator, []

        def __getstate__(self):  # the builder is the run's, not state
            return {k: v for k, v in self.__dict__.items() if k != "make_generator"}

        def __setstate__(self, state):
            self.__dict__.update(state)

        def after_train_dataset_adaptation(self, strategy, **kwargs):
            generator = self.make_generator()
            xs, ys = zip(*((item[0], item[1]) for item in strategy.adapted_dataset))
            x, y = torch.stack(xs), torch.as_tensor(ys)
            past = [(g, self.stream.classes(t)) for t, g in enumerate(self.owned)]
            self.owned.append(generator)
            generator.fit(x, self.stream.attributes_of(y))
            for g, classes in past:  # each past class from its owner
                g.sample(self.stream.attributes_of(classes), 2)


    @hookimpl
    def czsl_components():
        return [Component("replay", "per_task", "one generator per task")]


    @hookimpl
    def czsl_make_replay(stream, make_generator):
        return [PerTask(stream, make_generator)]
"""


def test_a_replay_may_build_a_generator_per_task_and_resumes_to_the_same_results(
        tmp_path, plugin_dir, monkeypatch):
    from czsl.observers import Observer
    from czsl.run import resume_run

    write_plugin_package(plugin_dir, "czsl-pertask", "czsl_test_pertask",
                         {"per_task": "czsl_test_pertask"}, PER_TASK_REPLAY)
    overrides = ["replay=per_task", "generator.epochs=2", "generator.hidden=16",
                 "generator.latent_dim=4"]
    reference = _run(tmp_path / "ref", *overrides)
    assert reference.results["generator"] == "cvae"
    train = ZSLLearner.train_task

    def stop(self, task):
        if task == 2:
            raise KeyboardInterrupt
        return train(self, task)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        # (the context: undoing the test's monkeypatch would drop plugin_dir's path too)
        patch.setattr(ZSLLearner, "train_task", stop)
        _run(tmp_path / "runs", *overrides)

    class Holds(Observer):
        def before_run(self, start):
            self.built = start.built
            self.held = list(start.built.extra[-1].owned)

    holds = Holds()
    resumed = resume_run(tmp_path / "runs" / "synthetic", observers=[holds], **QUIET)
    # the two generators built before the stop are rebuilt, restored, and are the ones held
    assert len(holds.held) == 2 and all(a is b for a, b in zip(holds.held,
                                                                 holds.built.generators))
    assert len(holds.built.generators) == 3  # and the third task built its own
    drop = {"wall_time_s"}
    assert {k: v for k, v in resumed.results.items() if k not in drop} == {
        k: v for k, v in reference.results.items() if k not in drop}
