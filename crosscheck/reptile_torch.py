"""`--protocol reptile-torch` against dualslash/reptile-torch (src/, commit f1bb111).

The source is PyTorch published only as a repository (no package), so the lines the check
needs are re-expressed here and cited (src/<file>:<line>): its network (torch.py), its
task sampler (tasks/sampler.py, tasks/logistic.py), its training step (reptile.py `train`)
and its evaluation (reptile.py `eval`). Both sides run in float64 (the source runs
float32, reptile.py:90) on the same φ₀, the same task and the same mini-batches:
(a) one meta-update at outer iteration 0, (b) one test episode's adaptation and score.
The mini-batch *rule* (a fresh permutation per mini-batch) is compared by its statistics,
since the two sides draw from different generators.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchsuite.methods.reptile import minibatch_rows
from benchsuite.running.trial import evaluate_on_test, make_optimizer, make_schedule
from crosscheck.core import Check, Difference, Setting, protocol_config, relative_difference
from crosscheck.planned import built_in_float64, in_float64

SOURCE = "dualslash/reptile-torch, src/ at commit f1bb111"
TOLERANCE = 1e-5
SEED = 0

# The source's settings (src/main.py:2-15) and what its code makes of them.
THEIR_INNER_STEP, THEIR_EPOCHS, THEIR_BATCH, THEIR_POINTS = 0.02, 5, 10, 100
THEIR_OUTER_STEP, THEIR_ITERATIONS, THEIR_EVAL_STEPS, THEIR_EVAL_POINTS = 0.1, 1000, 32, 10
LAYER_NAMES = ("input", "hidden_in", "hidden_out", "output")  # src/torch.py:9-12


class TheirNetwork(nn.Module):
    """src/torch.py:1-22: Linear(1, n), two Linear(n, n), Linear(n, 1), tanh between."""

    def __init__(self, n: int):
        super().__init__()
        self.input, self.hidden_in = nn.Linear(1, n), nn.Linear(n, n)
        self.hidden_out, self.output = nn.Linear(n, n), nn.Linear(n, 1)

    def forward(self, x):
        x = torch.tanh(self.input(x))
        x = torch.tanh(self.hidden_in(x))
        x = torch.tanh(self.hidden_out(x))
        return self.output(x)


def their_network(phi) -> TheirNetwork:
    """Their module holding our φ (our layer i is their LAYER_NAMES[i])."""
    model = TheirNetwork(phi["layers.0.weight"].shape[0]).double()
    model.load_state_dict({f"{LAYER_NAMES[int(k.split('.')[1])]}.{k.split('.')[2]}": v.clone()
                           for k, v in phi.items()})
    return model


def our_params(model: TheirNetwork) -> dict[str, torch.Tensor]:
    return {f"layers.{LAYER_NAMES.index(k.split('.')[0])}.{k.split('.')[1]}": v.detach().clone()
            for k, v in model.state_dict().items()}


def their_loss(model, x, y):
    """src/reptile.py:84-100 (zero_grad, then nn.MSELoss of the model's estimate)."""
    model.zero_grad()
    return nn.MSELoss()(model(x), y)


def their_sgd_step(model, loss, step_size):
    """src/reptile.py:51-60 (and 136-145): backward, then θ.data −= step · θ.grad."""
    loss.backward()
    for theta in model.parameters():
        theta.data -= step_size * theta.grad.data


def their_train_iteration(model, x, y, batches, outer_iteration):
    """src/reptile.py:33-77, one outer iteration on one task: SGD over the given
    mini-batches of (x, y), then φ ← φ + α(W − φ), α = 0.1 (1 − i/1000)."""
    current = {k: v.clone() for k, v in model.state_dict().items()}
    for rows in batches:
        their_sgd_step(model, their_loss(model, x[rows], y[rows]), THEIR_INNER_STEP)
    alpha = THEIR_OUTER_STEP * (1 - outer_iteration / THEIR_ITERATIONS)
    candidate = model.state_dict()
    model.load_state_dict({k: current[k] + alpha * (candidate[k] - current[k])
                           for k in candidate})


def their_eval(model, x, y, sample_size):
    """src/reptile.py:116-158 on given points: loss before, 32 SGD steps, loss after;
    returns the adapted weights and |before − after| / sample_size."""
    before = their_loss(model, x, y).item()
    for _ in range(THEIR_EVAL_STEPS):
        their_sgd_step(model, their_loss(model, x, y), THEIR_INNER_STEP)
    after = their_loss(model, x, y).item()
    return our_params(model), abs(before - after) / sample_size


def their_logistic(x, height, slope, midpoint):
    """src/tasks/logistic.py:1-3."""
    return height / (1 + torch.exp(-1 * slope * (x - midpoint)))


def their_distinct_per_epoch(epochs: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct points touched by one epoch of the source's mini-batches: for each batch
    start b, a fresh permutation's [b, b + 10) (src/reptile.py:43-47)."""
    counts = []
    for _ in range(epochs):
        touched = set()
        for start in range(0, THEIR_POINTS, THEIR_BATCH):
            touched.update(rng.permutation(THEIR_POINTS)[start:start + THEIR_BATCH].tolist())
        counts.append(len(touched))
    return np.array(counts, dtype=float)


def settings_table(config, task) -> list[Setting]:
    c = config
    sizes = task.layer_sizes()
    rows = [
        ("tasks per outer iteration", "src/reptile.py:37", 1, c["meta_batch"]),
        ("inner step size", "src/main.py:2, src/reptile.py:60", THEIR_INNER_STEP,
         c["inner_lr"]),
        ("inner SGD steps (epochs × batches)", "src/main.py:3, src/reptile.py:40-43",
         THEIR_EPOCHS * THEIR_POINTS // THEIR_BATCH, c["inner_steps"]),
        ("mini-batch size (the meta_batch_size argument)", "src/main.py:7, src/reptile.py:47",
         THEIR_BATCH, c["inner_batch"]),
        ("mini-batch rule", "src/reptile.py:46-47", "resampled", c["inner_batches"]),
        ("inner loop trains on all points", "src/reptile.py:43, 50", True,
         c["train_on_query"] and c["samples"] == THEIR_POINTS),
        ("inner optimiser", "src/reptile.py:54-60", "sgd", c["inner_optimizer"]),
        ("network widths", "src/torch.py:9-12, src/main.py:13", [1, 32, 32, 32, 1], sizes),
        ("activation", "src/torch.py:17-19", "tanh", c["activation"]),
        ("height L range", "src/tasks/sampler.py:8", [1.0, 10.0],
         [c["height_min"], c["height_max"]]),
        ("slope k range", "src/tasks/sampler.py:9", [1.0, 10.0],
         [c["slope_min"], c["slope_max"]]),
        ("midpoint x₀ range", "src/tasks/sampler.py:10", [-1.0, 1.0],
         [c["midpoint_min"], c["midpoint_max"]]),
        ("inputs", "src/tasks/sampler.py:20-24, src/main.py:14-15, 28",
         ["grid", 4.0, 100], [c["inputs"], c["sample_radius"], c["samples"]]),
        ("outer step, schedule, optimiser", "src/main.py:5, src/reptile.py:68-77",
         [0.1, "linear", "sgd"], [c["meta_lr"], c["meta_lr_schedule"], c["meta_optimizer"]]),
        ("outer iterations", "src/main.py:6", THEIR_ITERATIONS, c["iterations"]),
        ("test-time steps", "src/main.py:9, 39, src/reptile.py:132", THEIR_EVAL_STEPS,
         c["eval_inner_steps"]),
        ("test-time points (self.meta_batch_size, not the sample size)",
         "src/main.py:7, src/reptile.py:119, src/tasks/sampler.py:17", THEIR_EVAL_POINTS,
         c["shots"]),
        ("test-time step size (self.inner_step_size)", "src/reptile.py:145",
         THEIR_INNER_STEP, c["inner_lr"]),
        ("test-time full-batch steps", "src/reptile.py:135", THEIR_EVAL_POINTS,
         min(c["inner_batch"], c["shots"])),
        ("score: |loss before − after| on the adaptation points",
         "src/reptile.py:128-153", "support_loss_drop",
         "support_loss_drop" if "support_loss_drop" in task.extra_metrics else None),
    ]
    settings = [Setting(name, line, theirs, ours, theirs == ours)
                for name, line, theirs, ours in rows]
    settings.append(Setting(
        "test episodes", "src/main.py:32-39", "10 tasks × 10 draws", c["test_episodes"],
        c["test_episodes"] == 100, "one task per episode here (the protocol's deviation)"))
    return settings


def meta_update_difference(task, method, phi, config) -> list[Difference]:
    """(a) one outer iteration, ours through the trial's optimiser and schedule."""
    episode = in_float64(task.sample_batch("train", 1, torch.Generator().manual_seed(SEED)))
    x = torch.cat([episode.support_x[0], episode.query_x[0]])
    y = torch.cat([episode.support_y[0], episode.query_y[0]])

    torch.manual_seed(SEED)
    grads = method.meta_gradient(task, phi, episode).grads
    ours = {k: v.clone() for k, v in phi.items()}
    optimizer = make_optimizer(config, list(ours.values()))
    make_schedule(config, optimizer)
    for k, v in ours.items():
        v.grad = grads[k]
    optimizer.step()

    torch.manual_seed(SEED)  # the same draws: ours is looped, one task, one call
    batches = minibatch_rows(len(x), config["inner_batch"], config["inner_steps"],
                             config["inner_batches"])
    # their task: the curve's parameters drawn as our sampler drew them (same generator,
    # same order), their formula on their grid
    g = torch.Generator().manual_seed(SEED)
    height, slope, midpoint = (task.uniform(name, (1, 1, 1), g).double()[0]
                               for name in ("height", "slope", "midpoint"))
    grid = torch.linspace(-4, 4, THEIR_POINTS, dtype=torch.float64)[:, None]
    their_y = their_logistic(grid, height, slope, midpoint)
    position = ((x + 4) / (8 / (THEIR_POINTS - 1))).round().long().squeeze(-1)
    model = their_network(phi)
    their_train_iteration(model, x, y, batches, 0)  # on our points: the update rule alone
    return [
        Difference("task points: our x against their grid", relative_difference(
            x, grid[position]), TOLERANCE,
            "linspace(−4, 4, 100), sampler.py:23; ours drawn in float32"),
        Difference("task values: our y against their logistic", relative_difference(
            y, their_y[position]), TOLERANCE, "tasks/logistic.py:1-3; ours in float32"),
        Difference("(a) φ after one meta-update (iteration 0)", relative_difference(
            ours, our_params(model)), TOLERANCE,
            f"{config['inner_steps']} SGD steps, then φ + 0.1 (W − φ)"),
    ]


def schedule_difference(config) -> Difference:
    """The outer step at every iteration: the trial's schedule against α = 0.1 (1 − i/1000)."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = make_optimizer(config, [param])
    schedule = make_schedule(config, optimizer)
    ours, theirs = [], []
    for i in range(config["iterations"]):
        ours.append(optimizer.param_groups[0]["lr"])
        theirs.append(THEIR_OUTER_STEP * (1 - i / THEIR_ITERATIONS))
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return Difference("outer step α at every iteration", relative_difference(
        torch.tensor(ours), torch.tensor(theirs)), TOLERANCE, "src/reptile.py:68")


def test_episode_differences(task, method, phi, config) -> list[Difference]:
    """(b) one test episode: our evaluation (adaptation, support_loss_drop) against theirs
    on the same 10 points."""
    episode = in_float64(task.sample_batch("test", 1, torch.Generator().manual_seed(SEED)))
    torch.manual_seed(SEED)
    theta = method.adapt(task, phi, episode.support_x[0], episode.support_y[0],
                         config["eval_inner_steps"])
    metrics = evaluate_on_test(method, task, phi, episode, {**config, "eval_steps": ()})
    model = their_network(phi)
    their_theta, their_score = their_eval(model, episode.support_x[0], episode.support_y[0],
                                          THEIR_EVAL_POINTS)
    ours_score = metrics["support_loss_drop"] / THEIR_EVAL_POINTS
    return [
        Difference("(b) θ after 32 test-time steps", relative_difference(theta, their_theta),
                   TOLERANCE),
        Difference("(b) score |Δ loss| / sample size (10)", relative_difference(
            torch.tensor(ours_score), torch.tensor(their_score)), TOLERANCE,
            f"theirs {their_score:.6g}; ours support_loss_drop / 10; held-out MSE "
            f"{metrics['mse']:.4g} recorded beside it"),
    ]


def rule_difference(config, quick: bool) -> Difference:
    """The mini-batch rule by its statistics: distinct points an epoch of 10 mini-batches
    touches (theirs ≈ 100 (1 − 0.9¹⁰) ≈ 65.1; shuffled epochs would touch all 100)."""
    epochs = 200 if quick else 2000
    theirs = their_distinct_per_epoch(epochs, np.random.default_rng(SEED))
    torch.manual_seed(SEED)
    per_epoch = THEIR_POINTS // THEIR_BATCH
    ours = np.array([len(set(minibatch_rows(THEIR_POINTS, config["inner_batch"], per_epoch,
                                            config["inner_batches"]).flatten().tolist()))
                     for _ in range(epochs)], dtype=float)
    standard_error = np.sqrt(theirs.var() / epochs + ours.var() / epochs)
    return Difference(
        "mini-batch rule: distinct points per epoch", abs(ours.mean() - theirs.mean())
        / theirs.mean(), 4 * standard_error / theirs.mean(),
        f"ours {ours.mean():.2f}, theirs {theirs.mean():.2f} over {epochs} epochs; "
        "tolerance 4 standard errors")


def run(quick: bool = False) -> Check:
    return check(protocol_config("reptile", "logistic", named="reptile-torch"), quick)


def check(config: dict, quick: bool = False) -> Check:
    """The check of a resolved config of reptile on logistic (the protocol's, in `run`)."""
    config = {**config, "batching": "loop"}  # one task per call: the draws replay in order
    task, method, phi = built_in_float64("reptile", "logistic", config, SEED)
    differences = [*meta_update_difference(task, method, phi, config),
                   schedule_difference(config),
                   *test_episode_differences(task, method, phi, config),
                   rule_difference(config, quick)]
    deviations = [line.strip() for line in
                  planned_protocol_deviations().splitlines() if line.strip()]
    return Check("reptile-torch", SOURCE, settings_table(config, task), differences,
                 deviations)


def planned_protocol_deviations() -> str:
    from benchsuite.running import protocols

    return " ".join(protocols.load(protocols.PACKAGED).named_protocol("reptile-torch")
                    .deviations.split())
