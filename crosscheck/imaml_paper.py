"""The iMAML paper protocol (benchsuite/protocols/paper/imaml.toml) against the paper's code,
aravindr93/imaml_dev at 6a2a669 (a repository, not a package: the lines needed are
re-expressed below, each cited, and run on the suite's conv-4 written as an nn.Module).

What its Omniglot script runs per task (examples/omniglot_implicit_maml.py:103-127):
plain SGD steps on the support loss, one "pull-back" SGD step on ½λ‖w − w_k‖², the query
gradient, and CG on ((1 + regu_coef)I + H/(λ + lam_damping)) with the script's
`--cg_damping` passed as regu_coef and lam_damping left at 10; the meta-gradient is the
mean over tasks, stepped by Adam with ε = 1e-3. Its test (examples/measure_accuracy.py)
adapts with plain steps and λ = 0.

Compared in float64 on the same φ and tasks: (a) the meta-gradient and the Adam
meta-update of one meta-batch, (b) the test-time adaptation of one episode and its query
logits and score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchsuite.running.registry import discover
from crosscheck.betty_imaml import (
    ConvOmniglot,
    episodes,
    our_meta_step,
    our_test_episode,
    their_name,
)
from crosscheck.core import Check, Difference, protocol_config, relative_difference, setting

PROTOCOL = "imaml (paper protocol, omniglot)"
TASK = "omniglot"
REPO = "aravindr93/imaml_dev@6a2a669"
SCRIPT = "examples/omniglot_implicit_maml.py"
LEARNER = "implicit_maml/learner_model.py"
README = "examples/README.md:12"  # the training command line
TOLERANCE = 1e-5
LAM_DAMPING = 10.0  # learner_model.py:143, the default the script leaves
QUICK = {"filters": 4, "meta_batch": 2}


def flat(module) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in module.parameters()])


def net(phi, config) -> ConvOmniglot:
    """The suite's conv-4 (benchsuite.blocks.models.conv4_forward) as an nn.Module, loaded with φ:
    imaml_dev's own network (learner_model.py:190-228) is a deviation of the protocol."""
    module = ConvOmniglot(config["ways"], config["filters"]).double()
    module.load_state_dict({their_name(k): v for k, v in phi.items()})
    return module


def learn_on_data(model, optimizer, x, y, steps):
    """learner_model.py:84-99 without add_regularization: plain SGD steps on CE."""
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def pull_back(model, optimizer, w_0, lam):
    """omniglot_implicit_maml.py:108-112 with learner_model.py:41-66: one SGD step on
    ½λ‖w − w_0‖²."""
    optimizer.zero_grad()
    offset, regu_loss = 0, 0.0
    for p in model.parameters():
        delta = p.view(-1) - w_0[offset:offset + p.nelement()]
        regu_loss = regu_loss + 0.5 * lam * torch.sum(delta ** 2)
        offset += p.nelement()
    regu_loss.backward()
    optimizer.step()


def hessian_vector_product(model, x, y, vector):
    """learner_model.py:156-173: H v of the support loss at the current weights."""
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()),
                                create_graph=True)
    h = torch.sum(torch.cat([g.reshape(-1) for g in grads]) * vector)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(h, list(model.parameters()))])


def cg_solve(f_ax, b, cg_iters, residual_tol=1e-10):
    """implicit_maml/utils.py:45-98 (x_init None)."""
    x = torch.zeros_like(b)
    r = b - f_ax(x)
    p = r.clone()
    for _ in range(cg_iters):
        rdotr = r.dot(r)
        ap = f_ax(p)
        alpha = rdotr / p.dot(ap)
        x = x + alpha * p
        r = r - alpha * ap
        newrdotr = r.dot(r)
        p = r + newrdotr / rdotr * p
        if newrdotr < residual_tol:
            break
    return x


def their_meta_step(phi, batch, theirs):
    """One outer step of omniglot_implicit_maml.py:97-143 on the tasks of `batch`."""
    model = net(phi, theirs)
    w_k = flat(model).detach().clone()
    meta_grad = torch.zeros_like(w_k)
    for support_x, support_y, query_x, query_y in zip(*batch.tensors()):
        fast = net(phi, theirs)  # set_params(w_k.clone()), line 104
        inner_opt = torch.optim.SGD(fast.parameters(), lr=theirs["inner_lr"])  # learner:15
        learn_on_data(fast, inner_opt, support_x, support_y, theirs["n_steps"])
        pull_back(fast, inner_opt, w_k, theirs["lam"])
        valid_grad = torch.autograd.grad(F.cross_entropy(fast(query_x), query_y),
                                         list(fast.parameters()))  # lines 117-119
        flat_grad = torch.cat([g.reshape(-1) for g in valid_grad])

        def evaluator(v, fast=fast, x=support_x, y=support_y):  # learner_model.py:143-154
            return ((1.0 + theirs["regu_coef"]) * v + hessian_vector_product(fast, x, y, v)
                    / (theirs["lam"] + theirs["lam_damping"]))

        meta_grad += cg_solve(evaluator, flat_grad, theirs["cg_steps"]) / len(batch)
    outer_opt = torch.optim.Adam(model.parameters(), lr=theirs["outer_lr"], eps=1e-3)
    offset = 0
    for p in model.parameters():  # outer_step_with_grad, learner_model.py:118-141
        p.grad = meta_grad[offset:offset + p.nelement()].view(p.size()).clone()
        offset += p.nelement()
    outer_opt.step()
    return unflatten(meta_grad, phi), {k: v.detach() for k, v in
                                       zip(phi, model.parameters())}


def unflatten(vector, like):
    out, offset = {}, 0
    for k, v in like.items():
        out[k] = vector[offset:offset + v.numel()].view(v.shape)
        offset += v.numel()
    return out


def their_test_episode(phi, episode, theirs):
    """measure_accuracy.py:71-82: plain steps, the pull-back with λ = 0, query hits."""
    support_x, support_y, query_x, query_y = episode
    fast = net(phi, theirs)
    inner_opt = torch.optim.SGD(fast.parameters(), lr=theirs["inner_lr"])
    learn_on_data(fast, inner_opt, support_x, support_y, theirs["test_steps"])
    pull_back(fast, inner_opt, flat(fast).detach().clone(), theirs["test_lam"])
    with torch.no_grad():
        logits = fast(query_x)
    adapted = {k: v.detach() for k, v in zip(phi, fast.parameters())}
    return adapted, logits, (logits.argmax(dim=1) == query_y).double()


THEIRS = {  # the README's command line and the code's defaults, cited in `settings`
    "ways": 5, "shots": 1, "query": 1, "n_steps": 16, "inner_lr": 0.1, "lam": 2.0,
    "cg_steps": 5, "regu_coef": 1.0, "lam_damping": LAM_DAMPING, "task_mb_size": 32,
    "outer_lr": 1e-3, "adam_eps": 1e-3, "test_steps": 16, "test_lam": 0.0,
    "test_tasks": 600}


def settings(ours):
    t = THEIRS
    return [
        setting("ways, shots", f"{README} (--N_way 5 --K_shot 1)", (t["ways"], t["shots"]),
                (ours["ways"], ours["shots"])),
        setting("query images per class", "implicit_maml/dataset.py:147-148 (num_inst "
                "each)", t["query"], ours["query"]),
        setting("inner steps", f"{README} (--n_steps 16)", t["n_steps"], ours["inner_steps"]),
        setting("inner SGD step", f"{README} (--inner_lr 1e-1); {LEARNER}:15", t["inner_lr"],
                ours["inner_lr"]),
        setting("inner loop on the proximal problem", f"{SCRIPT}:107 (learn_task without "
                "add_regularization)", False, ours["inner_proximal"]),
        setting("pull-back step θ ← θ − αλ(θ − φ)", f"{SCRIPT}:108-112", True,
                ours["pull_back"]),
        setting("λ", f"{README} (--lam 2.0)", t["lam"], ours["proximal_lambda"]),
        setting("CG steps", f"{README} (--cg_steps 5); implicit_maml/utils.py:45-98",
                t["cg_steps"], ours["cg_steps"]),
        setting("CG identity weight 1 + ρ (regu_coef)", f"{SCRIPT}:124 (--cg_damping 1.0 "
                f"passed as regu_coef); {LEARNER}:152", 1 + t["regu_coef"],
                1 + ours["cg_regularization"]),
        setting("CG λ + δ (lam_damping)", f"{LEARNER}:143 (default 10), 152",
                t["lam"] + t["lam_damping"], ours["proximal_lambda"] + ours["cg_damping"]),
        setting("tasks per meta-update (mean)", f"{README} (--task_mb_size 32); {SCRIPT}:127",
                t["task_mb_size"], ours["meta_batch"]),
        setting("outer optimiser", f"{LEARNER}:16-17", "adam", ours["meta_optimizer"]),
        setting("outer rate", f"{README} (--outer_lr 1e-3)", t["outer_lr"], ours["meta_lr"]),
        setting("Adam ε", f"{LEARNER}:17", t["adam_eps"], ours["meta_adam_eps"]),
        setting("outer weight decay, schedule", f"{LEARNER}:17", (0.0, "constant"),
                (ours["meta_weight_decay"], ours["meta_lr_schedule"])),
        setting("test adaptation steps", "examples/README.md:16 (--n_steps 16)",
                t["test_steps"], ours["eval_inner_steps"]),
        setting("test adaptation keeps the proximal term", "examples/README.md:16 (--lam "
                "0.0); measure_accuracy.py:75-79", False, ours["test_proximal"]),
        setting("test tasks", "examples/README.md:16 (--num_tasks 600)", t["test_tasks"],
                ours["test_episodes"]),
        setting("network", f"{LEARNER}:190-228", "stride-2 convs, no pooling",
                "conv-4 with 2×2 max-pools", note="deviation: the task's network, shared "
                "by every method; the check runs both on ours"),
    ]


def run(quick: bool = False) -> Check:
    ours = protocol_config("imaml", TASK)
    check = Check(
        protocol=PROTOCOL, source=f"{REPO} ({SCRIPT}, {LEARNER}, implicit_maml/utils.py; "
        "re-expressed, cited line by line)", settings=settings(ours),
        deviations=[
            "Network: the task's conv-4 with max-pools, shared by every method; "
            "imaml_dev's has stride-2 convolutions and Xavier init (learner_model.py:190-228).",
            "Episodes: each quarter turn is a class of its own and strokes are 1; imaml_dev "
            "turns each class at random and keeps strokes 0 (dataset.py:199-218).",
            "CG runs all its steps where imaml_dev stops below a squared residual of 1e-10 "
            "(utils.py:88): on the full check's tasks it stops after 4 of 5 steps (squared "
            "residual ~1e-12 of ~300), which leaves ~3e-7 between the meta-gradients; ours "
            "also stops at non-positive curvature, where imaml_dev divides by it.",
            "Length: ≥ 20,000 meta-steps on ≥ 200,000 pre-drawn tasks in the paper; runs "
            "here use their command line's iterations and fresh episodes."])
    config = {**ours, **(QUICK if quick else {})}
    theirs = {**THEIRS, "filters": config["filters"]}  # their values, our network's width
    registry = discover()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        task = registry.task(TASK).cls(config, torch.device("cpu"))
        method = registry.method("imaml").cls(config)
        phi = {k: v.double() for k, v in
               task.init_meta_params(torch.Generator().manual_seed(0)).items()}
        batch = episodes(config, config["meta_batch"], seed=1)
        their_grads, their_phi = their_meta_step(phi, batch, theirs)
        our_grads, our_phi = our_meta_step(method, task, phi, batch, config)
        episode = tuple(t[0] for t in episodes(config, 1, seed=2).tensors())
        their_theta, their_logits, their_hits = their_test_episode(phi, episode, theirs)
        our_theta, our_logits, our_hits = our_test_episode(method, task, phi, episode, config)
    finally:
        torch.set_default_dtype(previous)
    shape = f"{len(batch)} tasks, {config['filters']} filters"
    check.differences = [
        Difference("(a) meta-gradient", relative_difference(our_grads, their_grads),
                   TOLERANCE, shape),
        Difference("(a) Adam meta-update φ₁ − φ₀",
                   relative_difference({k: our_phi[k] - phi[k] for k in phi},
                                       {k: their_phi[k] - phi[k] for k in phi}), TOLERANCE),
        Difference("(b) test adaptation θ of one episode",
                   relative_difference(our_theta, their_theta), TOLERANCE,
                   f"{config['eval_inner_steps']} SGD steps"),
        Difference("(b) query logits of that episode",
                   relative_difference(our_logits, their_logits), TOLERANCE),
        Difference("(b) query score of that episode", relative_difference(our_hits, their_hits),
                   0.0, f"accuracy {float(their_hits.mean()):.2f} both"),
    ]
    return check
