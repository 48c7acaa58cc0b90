"""Omniglot N-way K-shot character classification (Lake et al. 2015; protocol of Vinyals et
al. 2016 and Finn et al. 2017, MAML Section 5.2 and Appendix A.2).

Images are the 105×105 drawings resized to 28×28 (Lanczos) and inverted (strokes = 1).
Every character turned by 0°, 90°, 180° and 270° is a class of its own. The network is
conv-4 with 64 filters and batch norm on each task's own batch statistics. MAML's 5-way
1-shot protocol: one inner step with α = 0.4, meta-batch 32, Adam with β = 1e-3.

Class split, fixed for every run and machine: the characters present ("alphabet/character")
are ordered by the SHA-256 of their name, and cut in the proportions 1100 : 100 : 423 of the
1623 characters (train : validation : test, as learn2learn's benchmark and Ravi &
Larochelle 2017) — `class_split=pooled`, pooling images_background and images_evaluation.
`class_split=background-evaluation` keeps Lake's split instead: images_evaluation is the
test set, images_background is cut 1100 : 100 into train and validation the same way.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from benchsuite.blocks.data import missing_message
from benchsuite.blocks.fewshot import CONV_EXECUTION, ClassImages, FewShotClassification
from benchsuite.blocks.models import (
    conv4_strided_feature_size,
    conv4_strided_forward,
    conv4_strided_init,
)
from benchsuite.core.settings import Annotated, AtLeast

IMAGE_SETS = ("images_background", "images_evaluation")
SPLIT_PROPORTIONS = {"train": 1100, "validation": 100, "test": 423}
LAYOUT = ("images_background/<alphabet>/<character>/<drawing>.png and "
          "images_evaluation/<alphabet>/<character>/<drawing>.png (the unzipped "
          "images_background.zip and images_evaluation.zip of github.com/brendenlake/omniglot)")


def omniglot_folder(root: Path) -> Path:
    """`root` itself, or `root/omniglot-py` where torchvision's download unpacks it."""
    for folder in (root, root / "omniglot-py"):
        if any((folder / s).is_dir() for s in IMAGE_SETS):
            return folder
    return root


def characters_in(folder: Path, image_set: str) -> list[str]:
    """"alphabet/character" names of one image set, sorted."""
    return sorted(f"{c.parent.name}/{c.name}" for c in (folder / image_set).glob("*/*")
                  if c.is_dir())


def hash_order(names: list[str]) -> list[str]:
    """A fixed shuffle: the order of the names' SHA-256 digests."""
    return sorted(names, key=lambda name: hashlib.sha256(name.encode()).hexdigest())


def cut(names: list[str], splits: tuple[str, ...]) -> dict[str, list[str]]:
    """Cut hash-ordered `names` into `splits` in SPLIT_PROPORTIONS; the last takes the rest."""
    ordered = hash_order(names)
    total = sum(SPLIT_PROPORTIONS[s] for s in splits)
    parts, start = {}, 0
    for split in splits[:-1]:
        stop = start + round(len(ordered) * SPLIT_PROPORTIONS[split] / total)
        parts[split], start = sorted(ordered[start:stop]), stop
    parts[splits[-1]] = sorted(ordered[start:])
    return parts


def class_split(background: list[str], evaluation: list[str], scheme: str) -> dict[str, list[str]]:
    """Characters of each split, as "alphabet/character" names."""
    if scheme == "pooled":
        return cut(background + evaluation, ("train", "validation", "test"))
    return {**cut(background, ("train", "validation")), "test": sorted(evaluation)}


def load_drawing(path: Path, size: int) -> np.ndarray:
    image = Image.open(path).convert("L").resize((size, size), Image.LANCZOS)
    return 1.0 - np.asarray(image, dtype=np.float32) / 255


class Omniglot(FewShotClassification):
    name = "omniglot"
    paper = "Vinyals et al. 2016; Finn et al. 2017 (MAML), Omniglot"
    channels = 1
    image_size = 28

    @dataclass(frozen=True)
    class Settings:
        """MAML's 5-way 1-shot episodes, the network's width and the class split."""

        ways: Annotated[int, AtLeast(2)] = 5
        """N, the classes of an episode."""
        shots: Annotated[int, AtLeast(1)] = 1
        """K, the support images per class."""
        query: Annotated[int, AtLeast(1)] = 15
        """Query images per class, training and test episodes."""
        train_query: Annotated[int, AtLeast(0)] = 0
        """Query images per class in training episodes, if not 0 (then `query`): a method
        that trains on support and query trains on `shots + train_query` per class."""
        filters: Annotated[int, AtLeast(1)] = 64
        """Channels of each of conv-4's convolutions."""
        network: Literal["conv4", "conv4-strided"] = "conv4"
        """conv-4 with 2×2 max-pooling, or with stride-2 convolutions, no pooling, batch
        norm ε = 1e-3 and Glorot-uniform kernels (MAML's and supervised-reptile's
        TensorFlow Omniglot network)."""
        rotations: bool = True
        """Whether a character turned by 90°, 180° and 270° is a class of its own."""
        class_split: Literal["pooled", "background-evaluation"] = "pooled"
        """Which characters form the train, validation and test classes: `pooled` cuts
        images_background and images_evaluation together 1100 : 100 : 423;
        `background-evaluation` keeps Lake et al.'s split (images_evaluation is the test
        set)."""

    defaults = {
        "inner_steps": 1, "inner_lr": 0.4,
        "meta_batch": 32, "meta_lr": 1e-3, "meta_optimizer": "adam",
        "iterations": 60000,
        **CONV_EXECUTION,
    }
    quick = {"iterations": 1000}

    def init_meta_params(self, generator):
        if self.config["network"] == "conv4":
            return super().init_meta_params(generator)
        c = self.config
        return conv4_strided_init(self.channels, c["filters"], self.image_size, c["ways"],
                                  generator)

    def forward(self, params, x):
        if self.config["network"] == "conv4":
            return super().forward(params, x)
        return conv4_strided_forward(params, x)

    def feature_size(self):
        if self.config["network"] == "conv4":
            return super().feature_size()
        return conv4_strided_feature_size(self.config["filters"], self.image_size)

    def query_per_class(self, split):
        c = self.config
        return c["train_query"] if split == "train" and c["train_query"] else c["query"]

    @classmethod
    def data_problem(cls, root, config):
        folder = omniglot_folder(root)
        present = [s for s in IMAGE_SETS if next(folder.glob(f"{s}/*/*/*.png"), None)]
        needed = 1 if config["class_split"] == "pooled" else len(IMAGE_SETS)
        if len(present) >= needed:
            return None
        return missing_message("Omniglot", root, LAYOUT)

    @classmethod
    def download(cls, root):
        from torchvision.datasets import Omniglot as TorchvisionOmniglot

        for background in (True, False):
            TorchvisionOmniglot(str(root), background=background, download=True)

    def load_split(self, split):
        folder = omniglot_folder(self.root)
        names = {s: characters_in(folder, s) for s in IMAGE_SETS}
        characters = class_split(*names.values(), self.config["class_split"])[split]
        set_of = {name: s for s, in_set in names.items() for name in in_set}
        images, labels = [], []
        for label, character in enumerate(characters):
            for path in sorted((folder / set_of[character] / character).glob("*.png")):
                images.append(load_drawing(path, self.image_size))
                labels.append(label)
        pixels = torch.from_numpy(np.stack(images)).unsqueeze(1)
        return ClassImages(pixels, labels, rotations=self.config["rotations"])
