"""FC100 5-way few-shot classification (Oreshkin et al. 2018): CIFAR-100 split by
superclass into 60 train, 20 validation and 20 test classes, 32×32 images, read with
learn2learn's FC100 data set; MAML's mini-ImageNet protocol (conv-4, 32 filters).

On disk, in the data root: FC100_train.pickle, FC100_val.pickle, FC100_test.pickle
(MetaOptNet's pickles: a latin-1 pickled dict with `data`, N×32×32×3 uint8, and `labels`).
"""

import torch

from benchsuite.blocks.data import files_problem
from benchsuite.blocks.fewshot import ClassImages
from benchsuite.tasks.miniimagenet import MAMLProtocolImages

FILES = {"train": "FC100_train.pickle", "validation": "FC100_val.pickle",
         "test": "FC100_test.pickle"}


class FC100(MAMLProtocolImages):
    name = "fc100"
    paper = "Oreshkin et al. 2018 (TADAM), FC100; MAML protocol"
    image_size = 32
    learn2learn_dataset = "FC100"

    @classmethod
    def data_problem(cls, root, config):
        return files_problem("FC100", root, FILES.values(),
                             "MetaOptNet's FC100 pickles, as learn2learn reads them")

    def load_split(self, split):
        data = self.learn2learn_split(self.root, split)
        images = torch.from_numpy(data.images).permute(0, 3, 1, 2)
        return ClassImages(images, data.labels)
