"""Reptile's paper protocol on Omniglot against openai/supervised-reptile (commit 8f2b71c).

The source is TensorFlow 1, so nothing of it runs here: the check re-expresses, cited line
by line, its sampling and update rules — the mini-batches of a task (reptile.py
`_mini_batches`), Adam with β₁ = 0 as TensorFlow steps it (models.py:10, with the update
rule of tf.compat.v1.train.AdamOptimizer) on the summed loss (models.py:27-30), which
variables are restored after a task and after an evaluation (reptile.py:24-26, 62-74,
112-122), the interpolation (variables.py:8-12) and the annealed meta-step (train.py:54-55)
— and runs them on its network (models.py:17-25, the suite's `conv4-strided`) beside ours,
in float64, on the same seeded episodes and φ₀: (a) two meta-iterations of 5 tasks, (b) one
test episode's adaptation and transductive prediction. The batch rule itself is compared
by its statistics on the same class-sorted data, since the two sides draw from different
generators.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F

from benchsuite.blocks.models import conv4_strided_forward
from benchsuite.core.contract import EpisodeBatch
from benchsuite.methods.reptile import minibatch_rows
from benchsuite.running.trial import make_optimizer, make_schedule
from crosscheck.core import Check, Difference, Setting, protocol_config, relative_difference
from crosscheck.planned import built_in_float64

SOURCE = "openai/supervised-reptile at commit 8f2b71c (TensorFlow 1: rules re-expressed)"
TOLERANCE = 1e-5
SEED = 0

# README, transductive 1-shot 5-way Omniglot: --shots 1 --inner-batch 10 --inner-iters 5
# --meta-step 1 --meta-batch 5 --meta-iters 100000 --eval-batch 5 --eval-iters 50
# --learning-rate 0.001 --meta-step-final 0 --train-shots 10 --transductive
WAYS, SHOTS, TRAIN_SHOTS, INNER_BATCH, INNER_ITERS = 5, 1, 10, 10, 5
META_STEP, META_STEP_FINAL, META_BATCH, META_ITERS = 1.0, 0.0, 5, 100_000
EVAL_BATCH, EVAL_ITERS, LEARNING_RATE = 5, 50, 1e-3
BETA1, BETA2, EPSILON = 0.0, 0.999, 1e-8  # models.py:10; TF's AdamOptimizer defaults


def their_mini_batches(samples: list, batch_size: int, num_batches: int,
                       rng: random.Random):
    """reptile.py:223-248 without replacement: shuffle, fill batches, reshuffle when the
    pass ends (a batch may span two passes)."""
    samples = list(samples)
    cur_batch, batch_count = [], 0
    while True:
        rng.shuffle(samples)
        for sample in samples:
            cur_batch.append(sample)
            if len(cur_batch) < batch_size:
                continue
            yield cur_batch
            cur_batch, batch_count = [], batch_count + 1
            if batch_count == num_batches:
                return


class TheirAdam:
    """tf.compat.v1.train.AdamOptimizer's update, β₁ = 0 (models.py:10):
    t ← t + 1; lr_t = lr √(1 − β₂ᵗ) / (1 − β₁ᵗ); m ← β₁ m + (1 − β₁) g;
    v ← β₂ v + (1 − β₂) g²; var ← var − lr_t m / (√v + ε). Its slots (m, v) and the
    power accumulators are global, not trainable, variables."""

    def __init__(self, variables: dict[str, torch.Tensor]):
        self.m = {k: torch.zeros_like(v) for k, v in variables.items()}
        self.v = {k: torch.zeros_like(v) for k, v in variables.items()}
        self.t = 0

    def minimize(self, variables, gradient):
        self.t += 1
        lr_t = LEARNING_RATE * math.sqrt(1 - BETA2 ** self.t) / (1 - BETA1 ** self.t)
        for k, g in gradient.items():
            self.m[k] = BETA1 * self.m[k] + (1 - BETA1) * g
            self.v[k] = BETA2 * self.v[k] + (1 - BETA2) * g * g
            variables[k] = variables[k] - lr_t * self.m[k] / (self.v[k].sqrt() + EPSILON)


def their_loss_gradient(variables, x, y):
    """models.py:27-30: minimize_op on the per-example cross-entropy vector, i.e. on its
    sum; the network of models.py:17-25 (conv4_strided_forward, checked against torch.nn
    in tests/test_crosscheck_reptile.py)."""
    leaves = {k: v.detach().requires_grad_() for k, v in variables.items()}
    loss = F.cross_entropy(conv4_strided_forward(leaves, x), y, reduction="none").sum()
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


def their_train_step(variables, adam: TheirAdam, tasks, batches, meta_step_size):
    """reptile.py:62-74: per task, the mini-batches' Adam steps from the old variables,
    then only the trainable variables restored (Adam's slots carry on); the average of
    the tasks' variables interpolated from the old ones (variables.py:8-21)."""
    old = dict(variables)
    new = []
    for (x, y), task_batches in zip(tasks, batches):
        current = dict(old)
        for rows in task_batches:
            adam.minimize(current, their_loss_gradient(current, x[rows], y[rows]))
        new.append(current)
    average = {k: torch.stack([n[k] for n in new]).mean(0) for k in old}
    return {k: old[k] + meta_step_size * (average[k] - old[k]) for k in old}


def their_evaluate(variables, adam: TheirAdam, support, query, rng: random.Random):
    """reptile.py:112-128, transductive: Adam steps on batches of the train set from the
    full state, the query images predicted together; the full state (variables and
    Adam's slots) restored afterwards. Returns the adapted variables and predictions."""
    saved = (dict(adam.m), dict(adam.v), adam.t)
    current = dict(variables)
    (sx, sy), (qx, _) = support, query
    for batch in their_mini_batches(range(len(sy)), EVAL_BATCH, EVAL_ITERS, rng):
        rows = torch.tensor(batch)
        adam.minimize(current, their_loss_gradient(current, sx[rows], sy[rows]))
    predictions = conv4_strided_forward(current, qx).argmax(-1)
    adam.m, adam.v, adam.t = saved
    return current, predictions


def their_meta_step_size(i: int) -> float:
    """train.py:54-55."""
    frac_done = i / META_ITERS
    return frac_done * META_STEP_FINAL + (1 - frac_done) * META_STEP


def seeded_episodes(count: int, query: int, generator: torch.Generator) -> EpisodeBatch:
    """Episodes laid out as the suite's sampler lays them out (benchsuite.fewshot: one
    support image per class, then the queries sorted by class), of seeded random images."""
    support_y = torch.arange(WAYS).repeat(count, 1)
    query_y = torch.arange(WAYS).repeat_interleave(query).repeat(count, 1)
    return EpisodeBatch(torch.rand(count, WAYS * SHOTS, 1, 28, 28, generator=generator,
                                   dtype=torch.float64), support_y,
                        torch.rand(count, WAYS * query, 1, 28, 28, generator=generator,
                                   dtype=torch.float64), query_y)


def batch_statistics(order_labels: list[list[int]]) -> float:
    """Mean number of distinct classes in a mini-batch."""
    return float(np.mean([len(set(labels)) for labels in order_labels]))


def rule_differences(config, quick: bool) -> tuple[list[Difference], list[int], list[int]]:
    """Our batches of a class-sorted training task against theirs, by the distinct classes
    a batch holds (class-sorted cycling: 2.2; shuffled passes: about 4.6); whether every
    pass over the data is a permutation (theirs always is); our first batch's labels and
    those of cycling through the class-sorted task."""
    tasks = 200 if quick else 2000
    labels = torch.cat([torch.arange(WAYS),
                        torch.arange(WAYS).repeat_interleave(config["train_query"])])
    n = len(labels)
    torch.manual_seed(SEED)
    ours, passes_ok = [], True
    first = []
    for _ in range(tasks):
        rows = our_rows(config, n, config["inner_steps"])
        first = first or labels[rows[0]].tolist()
        ours += [labels[r].tolist() for r in rows]
        passes_ok &= all(sorted(p) == list(range(n)) for p in rows.flatten().split(n)
                         if len(p) == n)
    rng = random.Random(SEED)
    sorted_set = [(index, label) for index, label in enumerate(labels.tolist())]  # 210-221
    theirs = [[label for _, label in batch] for _ in range(tasks)
              for batch in their_mini_batches(sorted_set, INNER_BATCH, INNER_ITERS, rng)]
    a, b = batch_statistics(ours), batch_statistics(theirs)
    spread = np.sqrt(np.var([len(set(x)) for x in ours]) / len(ours)
                     + np.var([len(set(x)) for x in theirs]) / len(theirs))
    return [Difference("mini-batches: distinct classes per batch", abs(a - b) / b,
                       4 * spread / b, f"ours {a:.3f}, theirs {b:.3f} over {tasks} tasks; "
                       "tolerance 4 standard errors"),
            Difference("mini-batches: every pass a permutation", 0.0 if passes_ok else 1.0,
                       0.0, "reptile.py:238-240")], first, labels[:INNER_BATCH].tolist()


def our_rows(config, n, steps):
    """The rows our inner loop uses (Reptile.inner_loop), from torch's generator."""
    if config["inner_batches"] == "cycle":
        size = config["inner_batch"]
        return torch.stack([torch.arange(s * size, s * size + size) % n for s in range(steps)])
    return minibatch_rows(n, config["inner_batch"], steps, config["inner_batches"])


def settings_table(config, first_batch, cycled) -> list[Setting]:
    c = config
    rows = [
        ("inner optimiser", "models.py:10, args.py:42, 50-53", "adam",
         c["inner_optimizer"]),
        ("inner step size", "README command --learning-rate, args.py:27", LEARNING_RATE,
         c["inner_lr"]),
        ("inner iterations", "README --inner-iters, train.py:58", INNER_ITERS,
         c["inner_steps"]),
        ("inner batch size", "README --inner-batch, reptile.py:66", INNER_BATCH,
         c["inner_batch"]),
        ("inner batches: passes over the shuffled task", "reptile.py:66, 236-248",
         "shuffled", c["inner_batches"]),
        ("train shots per class (trained on)", "README --train-shots, train.py:57",
         TRAIN_SHOTS, c["shots"] + c["train_query"] if c["train_on_query"] else c["shots"]),
        ("Adam's moments across tasks", "reptile.py:24-26, 62-74, 114-122", "carried",
         c["inner_adam_state"]),
        ("classes per task", "README command (--classes default 5), args.py:21", WAYS,
         c["ways"]),
        ("network: stride-2 convolutions, no pooling", "models.py:17-25", "conv4-strided",
         c["network"]),
        ("filters", "models.py:21", 64, c["filters"]),
        ("test shots", "README --shots, reptile.py:112-113", SHOTS, c["shots"]),
        ("test queries per class", "reptile.py:113, 250-275 (test_shots=1)", 1, c["query"]),
        ("test-time iterations", "README --eval-iters, train.py:67-68", EVAL_ITERS,
         c["eval_inner_steps"]),
        ("test-time batch size", "README --eval-batch, train.py:67", EVAL_BATCH,
         c["eval_inner_batch"] or c["inner_batch"]),
        ("inner loss: the batch's sum", "models.py:27-30 (minimize of a per-example loss)",
         "sum", c["inner_loss"]),
        ("meta-batch", "README --meta-batch, reptile.py:64", META_BATCH, c["meta_batch"]),
        ("meta-step, final, schedule", "README --meta-step 1 --meta-step-final 0, "
         "train.py:54-55", [META_STEP, META_STEP_FINAL, "linear"],
         [c["meta_lr"], 0.0, c["meta_lr_schedule"]]),
        ("meta-update: interpolation (SGD on φ − W̄)", "reptile.py:73-74, variables.py:8-12",
         "sgd", c["meta_optimizer"]),
        ("weight decay (rate 1: none)", "args.py:37, variables.py:41-48", 1.0, 1.0),
    ]
    settings = [Setting(name, line, theirs, ours, theirs == ours)
                for name, line, theirs, ours in rows]
    settings.append(Setting("first training batch's labels (ours, seeded)",
                            "reptile.py:239 (shuffled)", "shuffled", first_batch,
                            first_batch != cycled,
                            f"class-sorted cycling gives {cycled}"))
    return settings


def update_differences(config, quick: bool) -> list[Difference]:
    """(a) two meta-iterations of 5 tasks and (b) one test episode, ours against theirs on
    the same φ₀, episodes and batches."""
    filters = 8 if quick else config["filters"]
    config = {**config, "filters": filters, "batching": "loop", "iterations": META_ITERS}
    task, method, phi = built_in_float64("reptile", "omniglot", config, SEED)
    generator = torch.Generator().manual_seed(SEED)
    batches = [seeded_episodes(META_BATCH, config["train_query"], generator)
               for _ in range(2)]
    test = seeded_episodes(1, config["query"], generator)

    torch.manual_seed(SEED)
    ours = {k: v.clone() for k, v in phi.items()}
    optimizer = make_optimizer(config, list(ours.values()))
    schedule = make_schedule(config, optimizer)
    for batch in batches:
        grads = method.meta_gradient(task, ours, batch).grads
        for k, v in ours.items():
            v.grad = grads[k]
        optimizer.step()
        schedule.step()
    theta = method.adapt(task, ours, test.support_x[0], test.support_y[0],
                         config["eval_inner_steps"])
    our_correct = int(task.score(theta, ours, test.query_x[0], test.query_y[0]).sum())

    carried_steps = method.carried.step if method.carried is not None else 0
    torch.manual_seed(SEED)  # the same draws, in the order our loop made them
    theirs, adam = dict(phi), TheirAdam(phi)
    for i, batch in enumerate(batches):
        tasks = [(torch.cat([batch.support_x[t], batch.query_x[t]]),
                  torch.cat([batch.support_y[t], batch.query_y[t]])) for t in range(len(batch))]
        rows = [our_rows(config, len(y), config["inner_steps"]) for _, y in tasks]
        theirs = their_train_step(theirs, adam, tasks, rows, their_meta_step_size(i))
    their_theta, predictions = their_evaluate(
        theirs, adam, (test.support_x[0], test.support_y[0]),
        (test.query_x[0], test.query_y[0]), random.Random(SEED))
    their_correct = int((predictions == test.query_y[0]).sum())
    return [
        *compare_weights("(a) φ after two meta-iterations", ours, theirs,
                         f"conv with {filters} filters; Adam carried over 50 steps"),
        Difference("(a) Adam's step count carried", abs(carried_steps - adam.t),
                   0.0, f"ours {carried_steps}, theirs {adam.t}"),
        *compare_weights("(b) θ after 50 test-time steps", theta, their_theta,
                         "Adam continuing from meta-training's state"),
        Difference("(b) transductive predictions: correct of 5", abs(our_correct - their_correct),
                   0.0, f"ours {our_correct}, theirs {their_correct}"),
    ]


def schedule_difference(config) -> Difference:
    """The meta-step at iterations across a run of the paper's length: the trial's
    schedule against train.py:54-55."""
    config = {**config, "iterations": META_ITERS}
    optimizer = make_optimizer(config, [torch.zeros(1, requires_grad=True)])
    factor = make_schedule(config, optimizer).lr_lambdas[0]
    points = [0, 1, META_ITERS // 3, META_ITERS // 2, META_ITERS - 1]
    ours = torch.tensor([config["meta_lr"] * factor(i) for i in points], dtype=torch.float64)
    theirs = torch.tensor([their_meta_step_size(i) for i in points], dtype=torch.float64)
    return Difference("meta-step at iterations 0, 1, N/3, N/2, N − 1 (N = 100,000)",
                      relative_difference(ours, theirs), TOLERANCE, "train.py:54-55")


def compare_weights(quantity: str, ours, theirs, note: str) -> list[Difference]:
    """Relative difference of all weights but the conv biases, and the conv biases'
    absolute one: batch norm cancels their gradient, so both sides hold 0 plus rounding
    noise, which Adam scales up by 1/ε (no relative difference means anything there)."""
    biases = [k for k in theirs if k.endswith("conv.bias")]
    rest = [k for k in theirs if k not in biases]
    absolute = max(float((ours[k] - theirs[k]).abs().max()) for k in biases)
    return [Difference(quantity, relative_difference({k: ours[k] for k in rest},
                                                     {k: theirs[k] for k in rest}),
                       TOLERANCE, note + "; conv biases apart"),
            Difference(f"{quantity}: conv biases, absolute", absolute, TOLERANCE,
                       "their exact value stays 0: batch norm cancels their gradient")]


def run(quick: bool = False) -> Check:
    return check(protocol_config("reptile", "omniglot"), quick)


def check(config: dict, quick: bool = False) -> Check:
    """The check of a resolved config of reptile on omniglot (the paper protocol's, in
    `run`)."""
    from benchsuite.running import protocols

    differences, first_batch, cycled = rule_differences(config, quick)
    differences += [schedule_difference(config), *update_differences(config, quick)]
    protocol = protocols.load(protocols.PACKAGED).for_trial("reptile", "omniglot")
    return Check("reptile (paper protocol, omniglot)", SOURCE,
                 settings_table(config, first_batch, cycled), differences,
                 [" ".join(protocol.deviations.split())])
