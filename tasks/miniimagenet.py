"""mini-ImageNet 5-way 1/5-shot classification (Vinyals et al. 2016) with the class split of
Ravi & Larochelle 2017 (64 train, 16 validation, 20 test classes of 600 images), in
learn2learn's pickle format; MAML's protocol (Finn et al. 2017, Section 5.2): conv-4 with
32 filters on 84×84 images, 5 inner steps with α = 0.01, meta-batch 4 (1-shot; use
`meta_batch=2` for 5-shot), Adam with β = 1e-3, 10 inner steps at test time.

On disk, in the data root: mini-imagenet-cache-{train,validation,test}.pkl, each a pickled
dict with `image_data` (N×84×84×3 uint8) and `class_dict` (class name → row indices).
The pickles are read directly rather than through learn2learn's MiniImagenet, which holds
them as float32 (3.3 GB for the training split); its download code fetches them.
"""

import pickle
from dataclasses import dataclass
from typing import ClassVar

import torch

from benchsuite.blocks.data import files_problem
from benchsuite.blocks.fewshot import CONV_EXECUTION, SPLITS, ClassImages, FewShotClassification
from benchsuite.core.settings import Annotated, AtLeast

FILES = {split: f"mini-imagenet-cache-{split}.pkl" for split in SPLITS}


@dataclass(frozen=True)
class ProtocolSettings:
    """MAML's mini-ImageNet episodes and network width, the `Settings` of every 84×84 and
    32×32 few-shot task (miniimagenet, tiered-imagenet, cifarfs, fc100)."""

    ways: Annotated[int, AtLeast(2)] = 5
    """N, the classes of an episode."""
    shots: Annotated[int, AtLeast(1)] = 1
    """K, the support images per class (5-shot: set `meta_batch=2` too, as MAML)."""
    query: Annotated[int, AtLeast(1)] = 15
    """Query images per class, training and test episodes."""
    filters: Annotated[int, AtLeast(1)] = 32
    """Channels of each of conv-4's convolutions."""


# The rest of MAML's protocol, shared the same way.
PROTOCOL = {
    "inner_steps": 5, "inner_lr": 0.01,
    "meta_batch": 4, "meta_lr": 1e-3, "meta_optimizer": "adam",
    "iterations": 60000,
    **CONV_EXECUTION,
}


def labelled_rows(class_dict: dict[str, list[int]], rows: int) -> torch.Tensor:
    """Class index of every row, classes numbered in sorted-name order."""
    labels = torch.full((rows,), -1, dtype=torch.long)
    for label, name in enumerate(sorted(class_dict)):
        labels[torch.as_tensor(class_dict[name], dtype=torch.long)] = label
    return labels


class MAMLProtocolImages(FewShotClassification):
    """A colour few-shot task under MAML's mini-ImageNet protocol (ProtocolSettings and
    PROTOCOL), whose files learn2learn's data set class `learn2learn_dataset` fetches
    (and, unless the task reads them itself, reads)."""

    channels = 3
    Settings = ProtocolSettings
    defaults = PROTOCOL
    quick = {"iterations": 200}
    learn2learn_dataset: ClassVar[str]
    """The name of the class in learn2learn.vision.datasets."""

    @classmethod
    def learn2learn_split(cls, root, split: str, download: bool = False):
        """learn2learn's data set of `split` in `root` (fetched first if `download`)."""
        from benchsuite.blocks.compat import learn2learn

        dataset = getattr(learn2learn.vision.datasets, cls.learn2learn_dataset)
        return dataset(str(root), mode=split, download=download)

    @classmethod
    def download(cls, root):
        cls.learn2learn_split(root, "train", download=True)


class MiniImagenet(MAMLProtocolImages):
    name = "miniimagenet"
    paper = "Vinyals et al. 2016; Ravi & Larochelle 2017 split; Finn et al. 2017 (MAML)"
    image_size = 84
    learn2learn_dataset = "MiniImagenet"

    @classmethod
    def data_problem(cls, root, config):
        return files_problem("mini-ImageNet", root, FILES.values(),
                             "learn2learn's mini-ImageNet pickles")

    @classmethod
    def download(cls, root):
        for split in SPLITS:  # each split is its own pickle
            cls.learn2learn_split(root, split, download=True)

    def load_split(self, split):
        with open(self.root / FILES[split], "rb") as file:
            data = pickle.load(file)
        images = torch.from_numpy(data["image_data"]).permute(0, 3, 1, 2)
        return ClassImages(images, labelled_rows(data["class_dict"], len(images)))
