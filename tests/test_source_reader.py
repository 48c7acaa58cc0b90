"""The source reader against Python itself: a module read from its text gives the values
the imported module has, and what the reader cannot settle raises Unresolvable."""

import importlib.util
import sys
import textwrap

import pytest

from benchsuite.running.source_eval import Unresolvable
from benchsuite.running.source_reader import Bound, ReadClass, Reader

MODULE = '''
import math
from dataclasses import dataclass

LIMIT = 3
NAMES = [f"n{i}" for i in range(LIMIT) if i != 1]
PAIRS = {k: v for k, v in zip("abc", (1, 2, 3))}
A, (B, C) = 1, (2, 3)


class Base:
    kind = "base"
    sizes = (1, 2)
    LIMIT = 10
    seen = [LIMIT for _ in range(2)]  # a comprehension sees the module's LIMIT
    label = f"{kind!r:>8}|{LIMIT:03d}"

    @classmethod
    def describe(cls, other):
        if other.kind == cls.kind:
            return f"{cls.kind} twins"
        return ", ".join(sorted([cls.kind, other.kind])) + f" ({len(cls.sizes)})"

    def method(self):
        return 1

    @property
    def prop(self):
        return 1


class Left(Base):
    kind = "left"
    sizes = Base.sizes + (3,)
    limit_then = LIMIT


class Right(Base):
    @classmethod
    def describe(cls, other):
        reason = super().describe(other)
        return reason.upper() if other.method is Base.method else reason

    def method(self):
        return 2


class Diamond(Left, Right):
    scaled = math.pi * 2 if LIMIT > 2 else -1.0
    flag = not Base.prop and None or "x"
    both = {**PAIRS, "d": A + B * C, "names": (*NAMES, "z")}

    @classmethod
    def limit(cls):
        return LIMIT, cls.limit_then


LIMIT = 4  # after the classes: their bodies saw 3, a function called later sees 4
'''
ATTRIBUTES = ("kind", "sizes", "LIMIT", "seen", "label", "limit_then", "scaled", "flag",
              "both")


@pytest.fixture
def modules(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location("reader_sample", path)
    real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real)
    read = Reader({}).load("<sample>", path)
    return real, read


def test_read_classes_have_the_values_python_gives_them(modules):
    real, read = modules
    reader = read.reader
    for name in ("Base", "Left", "Right", "Diamond"):
        cls, mine = getattr(real, name), read.global_value(name)
        assert isinstance(mine, ReadClass)
        assert [getattr(k, "__name__", None) for k in cls.__mro__] == [
            getattr(k, "name", getattr(k, "__name__", None)) for k in mine.mro()]
        for attribute in ATTRIBUTES:
            if hasattr(cls, attribute):
                assert reader.lookup(mine, attribute) == getattr(cls, attribute), (
                    name, attribute)
    for name in ("NAMES", "PAIRS", "A", "B", "C", "LIMIT"):
        assert read.global_value(name) == getattr(real, name)


def test_read_class_methods_return_what_python_returns(modules):
    real, read = modules
    reader = read.reader
    names = ("Base", "Left", "Right", "Diamond")
    for first in names:
        for second in names:
            described = reader.lookup(read.global_value(first), "describe")
            assert isinstance(described, Bound)
            assert reader.call(described, [read.global_value(second)], {}) == (
                getattr(real, first).describe(getattr(real, second)))
    limit = reader.call(reader.lookup(read.global_value("Diamond"), "limit"), [], {})
    assert limit == real.Diamond.limit() == (4, 3)


@pytest.mark.parametrize("source", [
    "import no_such_module_anywhere\n",
    "from benchsuite.core.settings import no_such_name\n",
    "X = open('file')\n",
    "class K(type('B', (), {})):\n    pass\n",
    "class K:\n    for i in range(2):\n        pass\n",
    "class K:\n    @classmethod\n    def f(cls):\n        for i in range(2):\n"
    "            return i\n",
    "import torch\nX = torch.zeros(2) + 1\n",
    "import enum\nclass K(enum.Enum):\n    A = 1\n",  # a metaclass from outside
    "import functools\n@functools.total_ordering\nclass K:\n    pass\n",
    "X = Y\nY = 1\n",  # used before it is bound
    "class K:\n    __slots__ = ()\n",
])
def test_what_only_running_would_settle_raises(tmp_path, source):
    path = tmp_path / "sample.py"
    path.write_text(textwrap.dedent(source))
    with pytest.raises(Unresolvable):
        module = Reader({}).load("<sample>", path)
        for name in module.names:
            value = module.global_value(name)
            if isinstance(value, ReadClass):
                value.create()
                for attribute in value.names:
                    found = module.reader.lookup(value, attribute)
                    if isinstance(found, Bound):
                        module.reader.call(found, [], {})


def test_reading_imports_nothing_it_reads(tmp_path):
    path = tmp_path / "sample.py"
    path.write_text("import torch\nfrom benchsuite.blocks.models import CONV4_HEAD_KEYS\n"
                    "KEYS = CONV4_HEAD_KEYS[::-1]\n")
    before = set(sys.modules)
    module = Reader({}).load("<sample>", path)
    assert module.global_value("KEYS") == ("head.bias", "head.weight")
    assert "benchsuite.blocks.models" not in set(sys.modules) - before
