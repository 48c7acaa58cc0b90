"""CIFAR-FS 5-way few-shot classification (Bertinetto et al. 2019): CIFAR-100 split into
64 train, 16 validation and 20 test classes, 32×32 images, read with learn2learn's CIFARFS
data set; MAML's mini-ImageNet protocol (conv-4, 32 filters).

On disk, in the data root: cifarfs/cifar100/data/<class>/<image>.png with the class lists
cifarfs/cifar100/splits/bertinetto/{train,val,test}.txt (the unzipped cifar100.zip
learn2learn downloads). On first use learn2learn copies each split's classes into
cifarfs/processed/{train,val,test}/, which is then read instead.
"""

import torch
from torchvision.transforms.functional import pil_to_tensor

from benchsuite.blocks.data import missing_files, missing_message
from benchsuite.blocks.fewshot import ClassImages
from benchsuite.tasks.miniimagenet import MAMLProtocolImages

RAW = ["cifarfs/cifar100/data", *(f"cifarfs/cifar100/splits/bertinetto/{s}.txt"
                                  for s in ("train", "val", "test"))]
PROCESSED = [f"cifarfs/processed/{s}" for s in ("train", "val", "test")]


class CIFARFS(MAMLProtocolImages):
    name = "cifarfs"
    paper = "Bertinetto et al. 2019, CIFAR-FS; MAML protocol"
    image_size = 32
    learn2learn_dataset = "CIFARFS"

    @classmethod
    def data_problem(cls, root, config):
        if not missing_files(root, PROCESSED) or not missing_files(root, RAW):
            return None
        return missing_message("CIFAR-FS", root, "cifarfs/cifar100/data/<class>/<image>.png "
                               "and cifarfs/cifar100/splits/bertinetto/{train,val,test}.txt "
                               "(learn2learn's cifar100.zip, unzipped into cifarfs/)")

    def load_split(self, split):
        data = self.learn2learn_split(self.root, split)
        images = torch.stack([pil_to_tensor(data.loader(path).convert("RGB"))
                              for path, _ in data.samples])
        return ClassImages(images, data.targets)
