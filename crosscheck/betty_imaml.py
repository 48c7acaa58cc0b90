"""`betty-imaml` (benchsuite/protocols/named/betty-imaml.toml) against Betty itself.

Betty comes from the package registry: betty-ml 0.2.1, installed with `pip install
--no-deps --ignore-requires-python betty-ml==0.2.1` (it declares Python < 3.11 and imports
on 3.11). The tutorial's user code — the ConvOmniglot network, the two ImplicitProblems
with their regulariser, the Env and the Engine's train step and test loop — lives only in
the repository (leopard-ai/betty examples/implicit_maml at 922ebc6, the version the
tutorial prints, there with meta-rate 5e-4 where the tutorial writes 3e-4); the lines needed
are re-expressed below, each cited. What runs is Betty's own machinery: Problem.step's
unrolling and gradient accumulation, the `darts` (or `cg`) hypergradient of
betty/hypergradient, the AdamW step and the cosine scheduler.

Compared in float64 on the same φ and the same tasks:
(a) the meta-gradient and the AdamW meta-update of one meta-batch, for the darts rows
    (Betty's darts) and the imaml rows (Betty's cg at 1 CG step: from the second step on
    Betty 0.2.1's CG is not CG, betty/hypergradient/cg.py:53);
(b) the test-time adaptation of one episode from φ (5 plain SGD steps) and its query
    logits and score.
"""

from __future__ import annotations

import importlib.metadata
import logging
import warnings
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from benchsuite.blocks.models import conv4_forward
from benchsuite.core.structures import EpisodeBatch
from benchsuite.running.registry import discover
from benchsuite.running.trial import make_optimizer, make_schedule, meta_gradient
from crosscheck.core import (
    Check,
    Difference,
    Unavailable,
    protocol_config,
    relative_difference,
    setting,
)

PROTOCOL = "betty-imaml"
TASK = "omniglot"
EXAMPLE = "leopard-ai/betty@922ebc6 examples/implicit_maml"
MAIN = f"{EXAMPLE}/main.py"
TOLERANCE = 1e-5
TUTORIAL_META_UPDATES = 7500  # main.py:60-63, 175-178: T_max and train_iters / (5 × 16)
TUTORIAL_META_LR = 3e-4       # the tutorial's AdamW (main.py:59 has 5e-4)
TUTORIAL_REG = 0.01           # omniglot.sh:2 (--reg 0.01), weighting Σ (θ − φ)² (main.py:69-74)
TUTORIAL_STEPS = 5            # main.py:22 (--inner_steps)
TUTORIAL_INNER_LR = 0.1       # main.py:66, 149
TUTORIAL_WAYS = 5             # omniglot.sh:2 (--ways 5)
RELEASE_CG_ITERATIONS = 3     # main.py:208-210 at 0.2.1 (type="cg")
TORCH_ADAMW_DECAY = 0.01      # torch.optim.AdamW's default: the tutorial passes none
QUICK = {"filters": 4, "meta_batch": 2}


def betty_version() -> str:
    try:
        return importlib.metadata.version("betty-ml")
    except importlib.metadata.PackageNotFoundError:
        raise Unavailable("betty-ml is not installed (pip install --no-deps "
                          "--ignore-requires-python betty-ml==0.2.1)") from None


class ConvOmniglot(nn.Module):
    """examples/implicit_maml/models.py:6-21, 24-107, 109-110 at 922ebc6: four blocks of
    3×3 conv (padding 1) → BatchNorm2d(momentum 1, no running statistics) → ReLU → 2×2
    max-pool, then a linear classifier on `hidden` features."""

    def __init__(self, ways: int, hidden: int):
        super().__init__()
        blocks = []
        for i in range(4):
            blocks.append((f"layer{i + 1}", nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(1 if i == 0 else hidden, hidden, 3, stride=1, padding=1)),
                ("norm", nn.BatchNorm2d(hidden, momentum=1.0, track_running_stats=False)),
                ("relu", nn.ReLU()), ("pool", nn.MaxPool2d(2))]))))
        self.features = nn.Sequential(OrderedDict(blocks))
        self.classifier = nn.Linear(hidden, ways)

    def forward(self, inputs):
        features = self.features(inputs)
        return self.classifier(features.view(features.size(0), -1))


def their_name(key: str) -> str:
    """Our conv-4 key (benchsuite.blocks.models.conv4_init) → ConvOmniglot's parameter name."""
    if key.startswith("head."):
        return "classifier." + key.removeprefix("head.")
    block, rest = key.split(".", 1)
    return f"features.layer{int(block.removeprefix('block')) + 1}.{rest}"


def network(phi, ways: int, hidden: int) -> ConvOmniglot:
    net = ConvOmniglot(ways, hidden).double()
    net.load_state_dict({their_name(k): v for k, v in phi.items()})
    return net


def betty_meta_step(phi, batch, config, hypergradient: str, cg_iterations: int = 1):
    """One meta-update by Betty's Engine over the tasks of `batch` (main.py's problems, env
    and engine re-expressed, Betty's code running them). Returns the accumulated
    meta-gradient the outer optimiser stepped with, and φ after the step (our keys)."""
    from betty.configs import Config, EngineConfig
    from betty.engine import Engine
    from betty.envs import Env
    from betty.logging import get_logger
    from betty.problems import ImplicitProblem

    get_logger().setLevel(logging.WARNING)  # Betty's progress lines
    steps, meta_batch, ways = TUTORIAL_STEPS, len(batch), TUTORIAL_WAYS
    tasks = [tuple(t[i] for t in batch.tensors()) for i in range(meta_batch)]
    captured = {}

    class Outer(ImplicitProblem):  # main.py:89-101
        def training_step(self, batch):
            inputs, labels = batch
            return F.cross_entropy(self.inner(inputs), labels)

        def get_batch(self):
            return self.env.batch["test"]

        def optimizer_step(self, *args, **kwargs):  # records the gradient it steps with
            captured.update({n: p.grad.detach().clone()
                             for n, p in self.module.named_parameters()})
            super().optimizer_step(*args, **kwargs)

    class Inner(ImplicitProblem):  # main.py:69-74, 104-119
        def training_step(self, batch):
            inputs, labels = batch
            distance = sum(((p1 - p2) ** 2).sum() for p1, p2 in
                           zip(self.parameters(), self.outer.parameters()))
            return F.cross_entropy(self.module(inputs), labels) + TUTORIAL_REG * distance

        def get_batch(self):
            return self.env.batch["train"]

        def on_inner_loop_start(self):
            self.module.load_state_dict(self.outer.module.state_dict())

    class TaskEnv(Env):  # MAMLEnv, main.py:122-134, on the given tasks in turn
        def __init__(self):
            super().__init__()
            self.batch = {}

        def step(self):
            support_x, support_y, query_x, query_y = tasks.pop(0)
            self.batch = {"train": (support_x, support_y), "test": (query_x, query_y)}

    class MAMLEngine(Engine):  # main.py:137-142
        def train_step(self):
            if self.global_step % steps == 1 or steps == 1:
                self.env.step()
            for leaf in self.leaves:
                leaf.step(global_step=self.global_step)

    outer_module = network(phi, ways, config["filters"])
    # main.py:59's AdamW. Betty 0.2.1 rebuilds an optimiser as its class called with its
    # `defaults` (betty/patch/optimizer.py:15), and torch's AdamW has a default its
    # __init__ refuses (decoupled_weight_decay); torch's AdamW is by definition Adam with
    # decoupled_weight_decay=True, which rebuilds
    outer_optimizer = torch.optim.Adam(outer_module.parameters(), lr=TUTORIAL_META_LR,
                                       weight_decay=TORCH_ADAMW_DECAY,
                                       decoupled_weight_decay=True)
    outer = Outer(name="outer", module=outer_module, optimizer=outer_optimizer,
                  scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(
                      outer_optimizer, T_max=meta_batch * TUTORIAL_META_UPDATES),
                  config=Config(retain_graph=True, gradient_accumulation=meta_batch))
    inner_module = network(phi, ways, config["filters"])
    kind = {"type": "darts"} if hypergradient == "darts" else {
        "type": "cg", "cg_iterations": cg_iterations, "cg_alpha": 1.0}
    inner = Inner(name="inner", module=inner_module,
                  optimizer=torch.optim.SGD(inner_module.parameters(), lr=TUTORIAL_INNER_LR),
                  config=Config(unroll_steps=steps, **kind))
    engine = MAMLEngine(config=EngineConfig(train_iters=steps * meta_batch,
                                            valid_step=10 * steps * meta_batch,
                                            strategy="cpu"),
                        problems=[outer, inner],
                        dependencies={"u2l": {outer: [inner]}, "l2u": {inner: [outer]}},
                        env=TaskEnv())
    with warnings.catch_warnings():  # Betty steps its scheduler before the optimiser
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        engine.run()
    ours = {their_name(k): k for k in phi}
    after = {ours[n]: p.detach().clone() for n, p in outer.module.named_parameters()}
    return {ours[n]: g for n, g in captured.items()}, after


def betty_test_episode(phi, episode, config):
    """main.py:144-170 for one episode: a fresh ConvOmniglot loaded with φ, 5 SGD steps of
    0.1 on the support loss (no regulariser), then the query logits and hits."""
    support_x, support_y, query_x, query_y = episode
    test_net = network(phi, TUTORIAL_WAYS, config["filters"])
    test_optim = torch.optim.SGD(test_net.parameters(), lr=TUTORIAL_INNER_LR)
    for _ in range(TUTORIAL_STEPS):
        loss = F.cross_entropy(test_net(support_x), support_y)
        test_optim.zero_grad()
        loss.backward()
        test_optim.step()
    ours = {their_name(k): k for k in phi}
    with torch.no_grad():
        logits = test_net(query_x)
    adapted = {ours[n]: p.detach() for n, p in test_net.named_parameters()}
    return adapted, logits, (logits.argmax(dim=1) == query_y).double()


def our_meta_step(method, task, phi, batch, config):
    """Our meta-gradient (the trial's, benchsuite.running.trial.meta_gradient) and one step of the
    trial's optimiser and schedule on it."""
    grads = meta_gradient(method, task, phi, batch).grads
    leaves = {k: v.clone().requires_grad_() for k, v in phi.items()}
    optimizer = make_optimizer(config, list(leaves.values()))
    make_schedule(config, optimizer)
    for k, leaf in leaves.items():
        leaf.grad = grads[k]
    optimizer.step()
    return grads, {k: v.detach() for k, v in leaves.items()}


def our_test_episode(method, task, phi, episode, config):
    support_x, support_y, query_x, query_y = episode
    theta = method.adapt(task, phi, support_x, support_y, config["eval_inner_steps"])
    logits = conv4_forward(task.network(theta, phi), query_x)
    return theta, logits, method.score(task, phi, theta, query_x, query_y)


def episodes(config, size: int, seed: int):
    """`size` tasks of random 28×28 images, class-ordered support and query (as
    main.py:77-86 splits learn2learn's class-ordered samples), in float64."""
    g = torch.Generator().manual_seed(seed)
    ways, shots, query = config["ways"], config["shots"], config["query"]

    def part(per_class):
        x = torch.rand(size, ways * per_class, 1, 28, 28, generator=g, dtype=torch.float64)
        y = torch.arange(ways).repeat_interleave(per_class).expand(size, -1).contiguous()
        return x, y

    return EpisodeBatch(*part(shots), *part(query))


def settings(imaml, darts):
    """The tutorial's settings (source lines at 922ebc6 unless said) beside our protocol's."""
    main = MAIN
    return [
        setting("ways, shots", f"{EXAMPLE}/omniglot.sh:2 (--ways 5 --shots 1)", (5, 1),
                (darts["ways"], darts["shots"])),
        setting("query images per class", f"{main}:44-49, 77-86 (2 × shots samples, even "
                "ones the support)", 1, darts["query"]),
        setting("regulariser λ in λ/2 ‖θ − φ‖²", f"{EXAMPLE}/omniglot.sh:2 (--reg 0.01); "
                f"{main}:69-74 (reg Σ (θ − φ)², no ½)", 2 * TUTORIAL_REG, darts["proximal_lambda"],
                note="" if darts["proximal_lambda"] == imaml["proximal_lambda"] else
                "imaml and darts rows disagree"),
        setting("inner steps", f"{main}:22 (--inner_steps 5), 184 (unroll_steps)", 5,
                darts["inner_steps"]),
        setting("inner SGD step", f"{main}:66", 0.1, darts["inner_lr"]),
        setting("tasks per meta-update (mean)", f"{main}:24, 179-183 (gradient_accumulation; "
                "betty/problems/problem.py: loss / gas)", 16, darts["meta_batch"]),
        setting("outer optimiser", f"tutorial; {main}:59", "adamw", darts["meta_optimizer"]),
        setting("outer rate", "tutorial (main.py:59 has 5e-4)", TUTORIAL_META_LR,
                darts["meta_lr"]),
        setting("outer weight decay", f"{main}:59 (none given: torch's AdamW default)",
                TORCH_ADAMW_DECAY, darts["meta_weight_decay"]),
        setting("Adam ε", f"{main}:59 (torch's default)", 1e-8, darts["meta_adam_eps"]),
        setting("rate schedule over the meta-updates", f"{main}:60-63 (CosineAnnealingLR, "
                "T_max = 16 × 7,500 task steps), 175-178",
                ("cosine", TUTORIAL_META_UPDATES),
                (darts["meta_lr_schedule"], darts["iterations"]),
                note="Betty steps it per task: less than one meta-update ahead of ours"),
        setting("darts: unrolled step", "betty/hypergradient/darts.py (none: ±ε on θ_T)",
                False, darts["unrolled_step"]),
        setting("darts: difference scale", "betty/configs/problem_dataclass.py "
                "(darts_alpha)", 0.01, darts["fd_scale"]),
        setting("imaml: CG steps", "leopard-ai/betty@0.2.1 examples/implicit_maml/main.py:"
                "208-210 (cg_iterations=3)", RELEASE_CG_ITERATIONS, imaml["cg_steps"]),
        setting("test adaptation steps", f"{main}:158", 5, darts["eval_inner_steps"]),
        setting("test adaptation keeps the regulariser", f"{main}:158-163 (plain CE)",
                False, darts["test_proximal"] or imaml["test_proximal"]),
        setting("test tasks", f"{main}:151", 500, darts["test_episodes"]),
        setting("network width", f"{EXAMPLE}/models.py:109-110 (hidden 64)", 64,
                darts["filters"]),
    ]


def run(quick: bool = False) -> Check:
    version = betty_version()
    registry = discover()
    configs = {m: protocol_config(m, TASK, named=PROTOCOL) for m in ("imaml", "darts")}
    check = Check(
        protocol=PROTOCOL,
        source=f"betty-ml {version} (package registry) running the tutorial's example "
               f"({EXAMPLE}, meta-rate 3e-4 as the tutorial prints)",
        settings=settings(configs["imaml"], configs["darts"]),
        deviations=[
            "Episodes: each quarter turn of a character is a class of its own (the task's "
            "sampler, shared by every method); learn2learn turns each drawn character by "
            "a random quarter turn.",
            "The cosine rate steps once per meta-update here, once per task in Betty: at "
            "meta-update k Betty's rate is the cosine at k + 15/16, ours at k.",
            "imaml rows: Betty 0.2.1's CG builds each new direction from the old residual "
            "(betty/hypergradient/cg.py:53, fixed upstream in 25bcb02), so (a) compares 1 "
            "CG step, where both are CG; the 3-step difference is shown, not tolerated.",
            "imaml rows: where H + λI has non-positive curvature along a CG direction "
            "(at λ = 0.02 it does, early in training) our CG stops and Betty's divides "
            "by it; measured once with Betty's CG fixed as upstream and our stop removed, "
            "3 steps agree to 2e-14, so these two account for the 3-step difference."])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for method_name in ("darts", "imaml"):
            config = {**configs[method_name], **(QUICK if quick else {})}
            if method_name == "imaml":
                config["cg_steps"] = 1
            check.differences += compare(registry, method_name, config, quick)
        if not quick:  # shown only, not tolerated
            check.differences += compare_cg_steps(registry, configs["imaml"])
    finally:
        torch.set_default_dtype(previous)
    return check


def build(registry, method_name, config):
    task = registry.task(TASK).cls(config, torch.device("cpu"))
    method = registry.method(method_name).cls(config)
    phi = {k: v.double() for k, v in
           task.init_meta_params(torch.Generator().manual_seed(0)).items()}
    return task, method, phi


def compare(registry, method_name, config, quick) -> list[Difference]:
    task, method, phi = build(registry, method_name, config)
    batch = episodes(config, config["meta_batch"], seed=1)
    their_grads, their_phi = betty_meta_step(phi, batch, config, method_name)
    our_grads, our_phi = our_meta_step(method, task, phi, batch, config)
    update = {k: our_phi[k] - phi[k] for k in phi}
    their_update = {k: their_phi[k] - phi[k] for k in phi}
    row = "darts rows, Betty's darts" if method_name == "darts" else \
        "imaml rows (1 CG step), Betty's cg"
    shape = f"{len(batch)} tasks, {config['filters']} filters"
    episode = tuple(t[0] for t in episodes(config, 1, seed=2).tensors())
    their_theta, their_logits, their_hits = betty_test_episode(phi, episode, config)
    our_theta, our_logits, our_hits = our_test_episode(method, task, phi, episode, config)
    return [
        Difference(f"(a) meta-gradient, {row}", relative_difference(our_grads, their_grads),
                   TOLERANCE, shape),
        Difference(f"(a) AdamW meta-update φ₁ − φ₀, {row}",
                   relative_difference(update, their_update), TOLERANCE,
                   f"Betty's first rate is the cosine after {len(batch) - 1} task steps, "
                   "(1 + cos(π(m − 1)/(7,500 m)))/2 of ours with m tasks"),
        Difference(f"(b) test adaptation θ of one episode, {method_name}",
                   relative_difference(our_theta, their_theta), TOLERANCE, "5 SGD steps"),
        Difference(f"(b) query logits of that episode, {method_name}",
                   relative_difference(our_logits, their_logits), TOLERANCE),
        Difference(f"(b) query score of that episode, {method_name}",
                   relative_difference(our_hits, their_hits), 0.0,
                   f"accuracy {float(their_hits.mean()):.2f} both"),
    ]


def compare_cg_steps(registry, config) -> list[Difference]:
    """The imaml rows at the protocol's CG steps against Betty 0.2.1's cg: shown, with an
    infinite tolerance (its CG is not CG from the second step on)."""
    task, method, phi = build(registry, "imaml", config)
    batch = episodes(config, config["meta_batch"], seed=1)
    their_grads, _ = betty_meta_step(phi, batch, config, "cg", RELEASE_CG_ITERATIONS)
    our_grads, _ = our_meta_step(method, task, phi, batch, config)
    return [Difference(f"(a) meta-gradient, imaml rows at {config['cg_steps']} CG steps, "
                       "Betty 0.2.1's cg", relative_difference(our_grads, their_grads),
                       float("inf"), "shown only: betty/hypergradient/cg.py:53")]
