"""N-way K-shot image classification: what every few-shot vision task shares.

A task file only says how to read its data set from disk (and how to fetch it); this module
turns the images of a split into episodes with learn2learn's task sampling (NWays, KShots,
LoadData, RemapLabels), and defines the conv-4 bilevel problem on them: θ₀ = φ for a
meta-initialisation, or, for a hyper-representation (Franceschi et al. 2018), φ the conv
backbone and θ a linear head that starts at zero. It names no task and no method.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from benchsuite.blocks.data import data_root, download_allowed
from benchsuite.blocks.models import CONV4_HEAD_KEYS, conv4_feature_size, conv4_forward, conv4_init
from benchsuite.core.contract import META_INIT, META_REPRESENTATION, EpisodeBatch, Params, Task

SPLITS = ("train", "validation", "test")

CONV_EXECUTION = {"batching": "loop", "meta_chunk": 1, "eval_chunk": 1}
"""How conv-4 meta-batches run on CPU, measured (reports/PERFORMANCE.md): one task at a
time, each task's meta-gradient accumulated before the next, with PyTorch's native batch
norm. vmap turns the convolutions into grouped ones (slower on CPU) and keeps every task's
graph alive; evaluation adapts one episode at a time for the same reason."""


class ClassImages(Dataset):
    """The images of one split and their class labels, as learn2learn's samplers index
    them. With `rotations`, every class also appears turned by 90°, 180° and 270°, each
    turn a class of its own (Santoro et al. 2016; Vinyals et al. 2016).

    `images` is a uint8 or float tensor (N, C, H, W), or any sequence of such images (a
    lazily decoding reader for data sets too large to hold decoded)."""

    def __init__(self, images: torch.Tensor | Sequence[torch.Tensor], labels: Sequence[int],
                 rotations: bool = False):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.turns = 4 if rotations else 1

    def __len__(self) -> int:
        return len(self.labels) * self.turns

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        turn, row = divmod(index, len(self.labels))
        image = self.images[row]
        image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        if turn:
            image = torch.rot90(image, turn, dims=(1, 2))
        return image, int(self.labels[row]) * self.turns + turn

    @property
    def classes(self) -> int:
        """Number of classes, every turn of a class counted as its own."""
        return (int(self.labels.max()) + 1) * self.turns if len(self.labels) else 0

    def labels_to_indices(self) -> dict[int, list[int]]:
        """Built from the label tensor, so learn2learn never iterates the images (nor
        writes a bookkeeping file)."""
        table: dict[int, list[int]] = {}
        n = len(self.labels)
        for row, label in enumerate(self.labels.tolist()):
            for turn in range(self.turns):
                table.setdefault(label * self.turns + turn, []).append(turn * n + row)
        return table


@contextlib.contextmanager
def python_random_seeded(seed: int):
    """learn2learn's transforms draw from Python's global `random`: seed it for the block
    and put the caller's state back afterwards, so episodes depend on `seed` alone."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


class EpisodeSampler:
    """N-way episodes with `shots` support and `query` query images per class, drawn by
    learn2learn's Taskset. Support and query are ordered by (remapped) class."""

    def __init__(self, images: ClassImages, ways: int, shots: int, query: int, split: str):
        # imported here: importing learn2learn prints gym's deprecation notice, which
        # would precede every command-line message (listing, planning errors)
        from benchsuite.blocks.compat import learn2learn as l2l

        KShots, LoadData = l2l.data.transforms.KShots, l2l.data.transforms.LoadData
        NWays, RemapLabels = l2l.data.transforms.NWays, l2l.data.transforms.RemapLabels

        table = images.labels_to_indices()
        smallest = min(len(rows) for rows in table.values())
        if len(table) < ways or smallest < shots + query:
            raise ValueError(
                f"the {split} split has {len(table)} classes with at least {smallest} images "
                f"each; {ways}-way episodes with {shots} shots + {query} queries need "
                f"{ways} classes of {shots + query} images")
        dataset = l2l.data.MetaDataset(images, labels_to_indices=table)
        self.ways, self.shots, self.query = ways, shots, query
        self.tasks = l2l.data.Taskset(dataset, task_transforms=[
            NWays(dataset, n=ways), KShots(dataset, k=shots + query), LoadData(dataset),
            RemapLabels(dataset)], num_tasks=-1)

    def sample(self, size: int, generator: torch.Generator) -> EpisodeBatch:
        seed = int(torch.randint(2**62, (), generator=generator))
        with python_random_seeded(seed):
            episodes = [self.tasks.sample() for _ in range(size)]
        x = torch.stack([images for images, _ in episodes])
        y = torch.stack([torch.as_tensor(labels) for _, labels in episodes])
        order = torch.sort(y, dim=1, stable=True).indices
        per_class = (size, self.ways, self.shots + self.query)
        x = torch.take_along_dim(x, order.view(*order.shape, 1, 1, 1), dim=1)
        x = x.view(*per_class, *x.shape[2:])
        y = torch.take_along_dim(y, order, dim=1).view(per_class)
        k = self.shots
        parts = (x[:, :, :k].flatten(1, 2), y[:, :, :k].flatten(1),
                 x[:, :, k:].flatten(1, 2), y[:, :, k:].flatten(1))
        # contiguous copies: convolutions over the strided slices were slower
        return EpisodeBatch(*(part.contiguous() for part in parts))


class FewShotClassification(Task):
    """Conv-4 few-shot classification, θ₀ = φ (MAML's setting). Subclasses set the image
    geometry and implement `data_problem`, `download` and `load_split`."""

    kind = META_INIT
    metric = "accuracy"
    higher_is_better = True
    head_keys = CONV4_HEAD_KEYS
    channels: ClassVar[int]
    image_size: ClassVar[int]

    def __init__(self, config: Mapping[str, Any], device: torch.device):
        super().__init__(config, device)
        self.root = data_root()
        self.samplers: dict[str, EpisodeSampler] = {}
        self.images: dict[str, ClassImages] = {}

    # -- data -------------------------------------------------------------------------------
    @classmethod
    def data_problem(cls, root: Path, config: Mapping[str, Any]) -> str | None:
        """What is missing under `root`, as a one-line instruction; None when complete."""
        raise NotImplementedError

    @classmethod
    def download(cls, root: Path) -> None:
        raise NotImplementedError

    def load_split(self, split: str) -> ClassImages:
        raise NotImplementedError

    @classmethod
    def check_data(cls, config):
        root = data_root()
        problem = cls.data_problem(root, config)
        if problem is None or not download_allowed():
            return problem
        try:
            cls.download(root)
        except Exception as error:  # no network, a moved file: report, don't crash planning
            return f"downloading {cls.name} into {root} failed ({type(error).__name__}: " \
                   f"{error}); {problem}"
        return cls.data_problem(root, config)

    def split_images(self, split: str) -> ClassImages:
        """The images of `split`, read from disk once."""
        if split not in self.images:
            self.images[split] = self.load_split(split)
        return self.images[split]

    def query_per_class(self, split: str) -> int:
        """Query images per class in the episodes of `split` (a task may train on more)."""
        return self.config["query"]

    def sample_batch(self, split, size, generator):
        if split not in self.samplers:
            c = self.config
            self.samplers[split] = EpisodeSampler(self.split_images(split), c["ways"],
                                                  c["shots"], self.query_per_class(split),
                                                  split)
        return self.samplers[split].sample(size, generator)

    def labelled_training_examples(self):
        return self.split_images("train")

    # -- the bilevel problem -------------------------------------------------------------------
    def init_meta_params(self, generator):
        c = self.config
        return conv4_init(self.channels, c["filters"], self.image_size, c["ways"], generator)

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """The network's logits (conv-4 with max-pooling; a task may offer another)."""
        return conv4_forward(params, x)

    def feature_size(self) -> int:
        """Width of the features the head reads."""
        return conv4_feature_size(self.config["filters"], self.image_size)

    def initial_theta(self, phi):
        return dict(phi)

    def network(self, theta: Params, phi: Params) -> Params:
        """The conv-4 parameters a forward pass uses."""
        return theta

    def inner_loss(self, theta, phi, x, y):
        return F.cross_entropy(self.forward(self.network(theta, phi), x), y)

    def outer_loss(self, theta, phi, x, y):
        return self.inner_loss(theta, phi, x, y)

    def score(self, theta, phi, x, y):
        return (self.forward(self.network(theta, phi), x).argmax(-1) == y).float()


class HyperRepresentation(FewShotClassification):
    """Franceschi et al. 2018 ("Bilevel Programming for Hyperparameter Optimization and
    Meta-Learning", Section 4.2): φ is the conv backbone shared by all tasks, θ a linear
    head fitted per episode from θ₀ = 0 on the features h_φ(x):
        f(θ, φ; S) = CE(θ h_φ(S)),   F(θ, φ; Q) = CE(θ h_φ(Q))."""

    kind = META_REPRESENTATION

    def init_meta_params(self, generator):
        params = super().init_meta_params(generator)
        return {k: v for k, v in params.items() if k not in self.head_keys}

    def initial_theta(self, phi):
        c = self.config
        weight = next(iter(phi.values())).new_zeros(c["ways"], self.feature_size())
        return {"head.weight": weight, "head.bias": weight.new_zeros(c["ways"])}

    def network(self, theta, phi):
        return {**phi, **theta}
