"""tiered-ImageNet 5-way few-shot classification (Ren et al. 2018): 608 ImageNet classes
grouped by category into 351 train, 97 validation and 160 test classes, 84×84 images,
read with learn2learn's TieredImagenet data set; MAML's mini-ImageNet protocol.

On disk, in the data root: tiered-imagenet/{train,val,test}_images_png.pkl (a pickled list
of PNG-encoded images) and tiered-imagenet/{train,val,test}_labels.pkl (a pickled dict
whose `label_specific` holds each image's class). The training split is 450k images
(9.5 GB decoded), so images are decoded per episode rather than held decoded.
"""

import io

import numpy as np
import torch
from PIL import Image

from benchsuite.blocks.data import files_problem
from benchsuite.blocks.fewshot import ClassImages
from benchsuite.tasks.miniimagenet import MAMLProtocolImages

SHORT = {"train": "train", "validation": "val", "test": "test"}
FILES = [f"tiered-imagenet/{s}_{part}.pkl" for s in SHORT.values()
         for part in ("images_png", "labels")]


class DecodedPNGs:
    """A sequence of PNG-encoded images that decodes an image when it is indexed."""

    def __init__(self, encoded: list[bytes]):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = Image.open(io.BytesIO(self.encoded[index])).convert("RGB")
        return torch.from_numpy(np.array(image)).permute(2, 0, 1)


class TieredImagenet(MAMLProtocolImages):
    name = "tiered-imagenet"
    paper = "Ren et al. 2018, tiered-ImageNet; MAML protocol"
    image_size = 84
    learn2learn_dataset = "TieredImagenet"

    @classmethod
    def data_problem(cls, root, config):
        return files_problem("tiered-ImageNet", root, FILES,
                             "learn2learn's tiered-ImageNet pickles")

    def load_split(self, split):
        data = self.learn2learn_split(self.root, split)
        return ClassImages(DecodedPNGs(data.images), data.labels)
