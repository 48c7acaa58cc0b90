"""The few-shot tasks read their real on-disk formats: tiny data sets are written here in
each format and loaded by the tasks' own loaders, then sampled into episodes."""

import io
import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image

from benchsuite.blocks.data import DATA_ROOT_VARIABLE
from tests.conftest import small_config

WAYS, SHOTS, QUERY = 3, 1, 2
CLASSES_PER_SPLIT, IMAGES_PER_CLASS = 4, 3


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def class_image(code, size, channels=3):
    """Every image of a class is this one constant image, so a loader that mixes up rows
    and labels yields episodes whose classes are not constant."""
    return np.full((size, size, channels), code, dtype=np.uint8)


# -- writers, one per on-disk format ---------------------------------------------------------
def write_miniimagenet(root):
    for s, split in enumerate(("train", "validation", "test")):
        codes = [10 * s + c + 1 for c in range(CLASSES_PER_SPLIT)]
        rows = [class_image(code, 84) for code in codes for _ in range(IMAGES_PER_CLASS)]
        class_dict = {f"n{code:08d}": list(range(c * IMAGES_PER_CLASS,
                                                 (c + 1) * IMAGES_PER_CLASS))
                      for c, code in enumerate(codes)}
        with open(root / f"mini-imagenet-cache-{split}.pkl", "wb") as file:
            pickle.dump({"image_data": np.stack(rows), "class_dict": class_dict}, file)


def write_fc100(root):
    for s, split in enumerate(("train", "val", "test")):
        labels = [c for c in range(CLASSES_PER_SPLIT) for _ in range(IMAGES_PER_CLASS)]
        data = np.stack([class_image(10 * s + c + 1, 32) for c in labels])
        with open(root / f"FC100_{split}.pickle", "wb") as file:
            pickle.dump({"data": data, "labels": labels}, file)


def write_cifarfs(root):
    splits = root / "cifarfs" / "cifar100" / "splits" / "bertinetto"
    splits.mkdir(parents=True)
    for s, split in enumerate(("train", "val", "test")):
        names = [f"class{s}{c}" for c in range(CLASSES_PER_SPLIT)]
        (splits / f"{split}.txt").write_text("\n".join(names) + "\n")
        for c, name in enumerate(names):
            for i in range(IMAGES_PER_CLASS):
                write_png(root / "cifarfs" / "cifar100" / "data" / name / f"{i}.png",
                          class_image(10 * s + c + 1, 32))


def write_tiered(root):
    folder = root / "tiered-imagenet"
    folder.mkdir()
    for s, split in enumerate(("train", "val", "test")):
        labels = [c for c in range(CLASSES_PER_SPLIT) for _ in range(IMAGES_PER_CLASS)]
        with open(folder / f"{split}_images_png.pkl", "wb") as file:
            pickle.dump([png_bytes(class_image(10 * s + c + 1, 84)) for c in labels], file)
        with open(folder / f"{split}_labels.pkl", "wb") as file:
            pickle.dump({"label_specific": np.array(labels)}, file)


def character_drawing(index):
    """A 105×105 1-bit drawing, the same for all drawers of a character and different
    from its own 90° turns (an L shape whose size and place encode the character)."""
    image = np.full((105, 105), 255, dtype=np.uint8)
    top, length = 10 + 7 * (index % 5), 30 + 8 * (index // 5)
    image[top:top + length, 20:32] = 0
    image[top + length - 12:top + length, 20:20 + length] = 0
    return image


def write_omniglot(root, image_sets=("images_background", "images_evaluation"), alphabets=3,
                   characters=4, drawings=IMAGES_PER_CLASS):
    index = 0
    for image_set in image_sets:
        for a in range(alphabets):
            for c in range(characters):
                for d in range(drawings):
                    path = root / image_set / f"{image_set[7:]}{a}" / f"character{c + 1:02d}"
                    write_png(path / f"{index:04d}_{d + 1:02d}.png", character_drawing(index))
                index += 1


WRITERS = {"miniimagenet": write_miniimagenet, "fc100": write_fc100,
           "cifarfs": write_cifarfs, "tiered-imagenet": write_tiered,
           "omniglot": write_omniglot}


def task_on(registry, name, root, monkeypatch, **overrides):
    monkeypatch.setenv(DATA_ROOT_VARIABLE, str(root))
    task_cls = registry.task(name).cls
    config = small_config(task_cls, registry.method("maml").cls, ways=WAYS, shots=SHOTS,
                          query=QUERY, **overrides)
    return task_cls, config


def assert_classes_consistent(batch):
    """Within an episode all images of a label are the same image, and labels differ."""
    for t in range(len(batch)):
        x = torch.cat([batch.support_x[t], batch.query_x[t]])
        y = torch.cat([batch.support_y[t], batch.query_y[t]])
        firsts = []
        for label in range(WAYS):
            images = x[y == label]
            assert len(images) == SHOTS + QUERY
            assert torch.equal(images, images[:1].expand_as(images))
            firsts.append(images[0])
        assert len({tuple(f.flatten().tolist()) for f in firsts}) == WAYS


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_missing_data_is_reported_and_nothing_is_written(registry, name, tmp_path,
                                                         monkeypatch):
    root = tmp_path / "absent"
    task_cls, config = task_on(registry, name, root, monkeypatch)
    message = task_cls.check_data(config)
    assert message and str(root) in message and "\n" not in message
    assert not root.exists()
    root.mkdir()
    assert task_cls.check_data(config)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_loader_reads_the_real_format_into_consistent_episodes(registry, name, tmp_path,
                                                               monkeypatch):
    WRITERS[name](tmp_path)
    task_cls, config = task_on(registry, name, tmp_path, monkeypatch)
    assert task_cls.check_data(config) is None
    task = task_cls(config, torch.device("cpu"))
    size = task_cls.image_size
    for split in ("train", "validation", "test"):
        batch = task.sample_batch(split, 3, torch.Generator().manual_seed(0))
        assert batch.support_x.shape == (3, WAYS * SHOTS, task_cls.channels, size, size)
        assert batch.query_x.shape == (3, WAYS * QUERY, task_cls.channels, size, size)
        assert batch.support_x.dtype == torch.float32
        assert 0 <= batch.support_x.min() and batch.support_x.max() <= 1
        assert_classes_consistent(batch)


def test_episodes_depend_on_the_generator_only(registry, tmp_path, monkeypatch):
    write_miniimagenet(tmp_path)
    task_cls, config = task_on(registry, "miniimagenet", tmp_path, monkeypatch)
    task = task_cls(config, torch.device("cpu"))
    random.seed(123)
    state = random.getstate()
    first = task.sample_batch("train", 4, torch.Generator().manual_seed(5))
    assert random.getstate() == state  # Python's global random stream is left untouched
    random.seed(999)
    again = task_cls(config, torch.device("cpu")).sample_batch(
        "train", 4, torch.Generator().manual_seed(5))
    other = task.sample_batch("train", 4, torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(first.tensors(), again.tensors(),
                                                 strict=True))
    assert not torch.equal(first.support_x, other.support_x)


def test_omniglot_turns_characters_into_four_classes(registry, tmp_path, monkeypatch):
    write_omniglot(tmp_path, image_sets=("images_background",), alphabets=1, characters=2)
    task_cls, config = task_on(registry, "omniglot", tmp_path, monkeypatch)
    images = task_cls(config, torch.device("cpu")).load_split("train")
    table = images.labels_to_indices()
    assert len(table) == 4 * len(set(images.labels.tolist()))
    upright, label = images[table[0][0]]
    for turn in (1, 2, 3):
        turned, turned_label = images[table[turn][0]]
        assert turned_label == label + turn
        torch.testing.assert_close(turned, torch.rot90(upright, turn, dims=(1, 2)))
        assert not torch.equal(turned, upright)
    assert 0.9 < upright.max() <= 1 and upright.min() == 0  # inverted: strokes are bright


def test_omniglot_class_split_is_fixed_by_the_names(registry):
    from benchsuite.tasks.omniglot import class_split

    # as many characters as the full data set: 964 background, 659 evaluation
    background = [f"Alphabet{a}/character{c:02d}" for a in range(30) for c in range(1, 34)]
    evaluation = [f"Script{a}/character{c:02d}" for a in range(20) for c in range(1, 34)]
    background, evaluation = background[:964], evaluation[:659]
    split = class_split(background, evaluation, "pooled")
    shuffled = random.Random(0).sample(background, len(background))
    assert class_split(shuffled, evaluation, "pooled") == split
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 1100, "validation": 100, "test": 423}
    assert sorted(sum(split.values(), [])) == sorted(background + evaluation)
    # pinned, so a change of the rule (or of anything it depends on) cannot go unnoticed
    assert split["validation"][:3] == ["Alphabet0/character19", "Alphabet1/character08",
                                       "Alphabet1/character25"]
    lake = class_split(background, evaluation, "background-evaluation")
    assert lake["test"] == sorted(evaluation)
    assert {len(lake["train"]), len(lake["validation"])} == {884, 80}


def test_omniglot_reads_the_torchvision_download_folder(registry, tmp_path, monkeypatch):
    write_omniglot(tmp_path / "omniglot-py", image_sets=("images_background",))
    task_cls, config = task_on(registry, "omniglot", tmp_path, monkeypatch)
    assert task_cls.check_data(config) is None
    lake = {**config, "class_split": "background-evaluation"}
    assert "images_evaluation" in task_cls.check_data(lake)
