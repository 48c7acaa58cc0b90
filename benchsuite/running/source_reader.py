"""Python modules read from their source, not run: what a class's definition says (its bases,
its attributes, what its class methods return) from the code's syntax tree, for the parts
of Python a plugin's class definition uses.

The catalog (benchsuite.running.static_catalog) reads the plugins this way so that
`benchsuite list` does not import them, and with them torch. The reader follows imports
between benchsuite modules and plugin files; a module it may import is one of `IMPORTED`
(torch-free and without side effects); any other module (torch, numpy, …) is only
looked up (it must be installed) and stands as an opaque name. Values are real Python
values where the code computes them from literals and pure functions (`PURE_BUILTINS`),
and read objects otherwise: a class (`ReadClass`), a function (`Function`), a method bound
to a class (`Bound`). Calling a read function interprets its body: assignments, `if`,
`return` and expressions, nothing else.

Whatever the reader cannot settle from the text — a call of an unknown function, an
operation on an opaque value, a statement it does not interpret, a module that is not
installed, a decorator or metaclass it does not know — raises `Unresolvable`, and its
caller imports the code instead; the reader never guesses a value.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import importlib.util
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any


class Unresolvable(Exception):
    """What the source reader cannot settle without running the code."""


IMPORTED = frozenset({"__future__", "typing", "math", "dataclasses", "collections.abc",
                      "benchsuite.core.settings", "benchsuite.running.config"})
"""Modules imported for real when read code imports them: torch-free, no side effects."""
PURE_BUILTINS = {name: getattr(builtins, name) for name in (
    "abs", "all", "any", "bool", "dict", "enumerate", "float", "frozenset", "int", "len",
    "list", "max", "min", "range", "repr", "reversed", "round", "set", "sorted", "str",
    "sum", "tuple", "zip")}
DECORATORS = {"classmethod": classmethod, "staticmethod": staticmethod, "property": property}
PURE_METHODS: dict[type, set[str]] = {
    str: {"join", "format", "split", "strip", "lstrip", "rstrip", "lower", "upper",
          "replace", "startswith", "endswith", "capitalize", "title"},
    dict: {"items", "keys", "values", "get"},
    tuple: {"index", "count"},
    list: {"index", "count"},
}
"""Methods of built-in values that compute without side effects."""
OPERATORS: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod, ast.Pow: operator.pow, ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_, ast.USub: operator.neg, ast.UAdd: operator.pos,
    ast.Invert: operator.invert, ast.Eq: operator.eq, ast.NotEq: operator.ne,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
MAX_DEPTH = 64
_EVERYWHERE = 1 << 62
"""The position of code that runs once its module is loaded (a function body): it sees
every global the module binds."""


class Opaque:
    """A module outside benchsuite (torch, numpy, …) or a name taken from one."""

    def __init__(self, name: str):
        self.name = name


class Binding:
    """One statement that binds a global name (or a class body's name) at `position`."""

    def __init__(self, position: int, how: str, node: ast.AST | None = None,
                 source: str = "", path: tuple[int, ...] = ()):
        self.position = position
        self.how = how
        """"import", "from", "class", "function", "assign", or "unknown" (a statement the
        reader does not follow)."""
        self.node = node
        self.source = source
        """The module (and, for "from", `module:name`) an import binds."""
        self.path = path
        """Where in a tuple target the name sits (a, (b, c) = …)."""
        self.value: Any = None
        self.state = "new"
        """"new", "busy" (being evaluated: met again, the code is circular) or "done"."""


def _bindings(statements: list[ast.stmt]) -> dict[str, list[Binding]]:
    """The names the statements of a module or class body bind, each with its bindings in
    order."""
    names: dict[str, list[Binding]] = {}

    def bind(name: str, binding: Binding) -> None:
        names.setdefault(name, []).append(binding)

    for position, node in enumerate(statements):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bind(alias.asname, Binding(position, "import", source=alias.name))
                else:
                    top = alias.name.partition(".")[0]
                    bind(top, Binding(position, "import", source=top))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                source = f"{'.' * node.level}{node.module or ''}:{alias.name}"
                bind(alias.asname or alias.name, Binding(position, "from", node, source))
        elif isinstance(node, ast.ClassDef):
            bind(node.name, Binding(position, "class", node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            bind(node.name, Binding(position, "function", node))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            if node.value is None:
                continue  # an annotation alone binds nothing
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name, path in _target_names(target):
                    bind(name, Binding(position, "assign", node, path=path))
        else:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    bind(inner.id, Binding(position, "unknown"))
                elif isinstance(inner, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    bind(inner.name, Binding(position, "unknown"))
                elif isinstance(inner, ast.alias):
                    bind((inner.asname or inner.name).partition(".")[0],
                         Binding(position, "unknown"))
    return names


def _target_names(target: ast.expr, path: tuple[int, ...] = ()
                  ) -> Iterator[tuple[str, tuple[int, ...]]]:
    if isinstance(target, ast.Name):
        yield target.id, path
    elif isinstance(target, ast.Tuple | ast.List) and not any(
            isinstance(e, ast.Starred) for e in target.elts):
        for index, element in enumerate(target.elts):
            yield from _target_names(element, (*path, index))
    else:  # an attribute, a subscript, a starred name: the name is not plainly bound
        for inner in ast.walk(target):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                yield inner.id, (-1,)


def _pick(value: Any, path: tuple[int, ...]) -> Any:
    for index in path:
        if index < 0:
            raise Unresolvable("an assignment to an attribute or a starred target")
        items = _real_items(value)
        value = items[index]
    return value


class ReadModule:
    """A module read from `path` under the name `name`."""

    def __init__(self, reader: Reader, name: str, path: Path, tree: ast.Module,
                 is_package: bool):
        self.reader = reader
        self.name = name
        self.path = path
        self.tree = tree
        self.is_package = is_package
        self.names = _bindings(tree.body)
        self.classes: dict[int, ReadClass] = {}

    def global_value(self, name: str, position: int = _EVERYWHERE) -> Any:
        """The value of the global `name` as code at `position` sees it."""
        before = [b for b in self.names.get(name, ()) if b.position < position]
        if not before:
            if name in self.names:
                raise Unresolvable(f"{self.name}: {name} is used before it is bound")
            return self.reader.builtin(name, self.name)
        binding = before[-1]
        return self.reader.binding_value(self, binding, ModuleScope(self, binding.position))

    def attribute(self, name: str) -> Any:
        if name in self.names:
            return self.global_value(name)
        if self.is_package:
            return self.reader.module(f"{self.name}.{name}")
        raise Unresolvable(f"module {self.name} has no {name}")

    def read_class(self, node: ast.ClassDef, scope: Scope, qualname: str) -> ReadClass:
        if id(node) not in self.classes:
            self.classes[id(node)] = ReadClass(self, node, scope, qualname)
        return self.classes[id(node)]


class ReadClass:
    """A class statement of a read module, created (bases, MRO, the hooks its bases run
    on subclasses) on first use."""

    def __init__(self, module: ReadModule, node: ast.ClassDef, scope: Scope, qualname: str):
        self.module = module
        self.node = node
        self.scope = scope
        """Where the class statement runs: its bases and decorators are evaluated there."""
        self.qualname = qualname
        self.names = _bindings(node.body)
        self.set: dict[str, Any] = {}
        """Attributes set on the class after its body ran (by a base's __init_subclass__)."""
        self._mro: list[Any] | None = None
        self.state = "new"

    @property
    def name(self) -> str:
        return self.node.name

    def mro(self) -> list[Any]:
        """The method resolution order: read classes, then Opaque bases, then `object`."""
        if self._mro is None:
            if self.node.keywords:
                raise Unresolvable(f"class {self.name}: a metaclass or class keywords")
            bases = []
            for expression in self.node.bases:
                base = self.module.reader.evaluate(expression, self.scope)
                if base is object:
                    continue
                if not isinstance(base, ReadClass | Opaque):
                    raise Unresolvable(f"class {self.name}: a base the reader cannot read")
                bases.append(base)
            self._mro = _linearize(self, bases)
        return self._mro

    def create(self) -> None:
        """Run the `__init_subclass__` its bases define, as Python does when the class
        statement ends."""
        if self.state != "new":
            return
        self.state = "creating"
        if any(isinstance(base, Opaque) for base in self.mro()):
            # a base from outside may bring a metaclass (an Enum's) that remakes the class
            raise Unresolvable(f"class {self.name}: a base the reader cannot read")
        for base in self.mro()[1:-1]:  # read classes, then object
            base.create()
        self.check_decorators()
        if any(not isinstance(s, ast.Assign | ast.AnnAssign | ast.FunctionDef | ast.ClassDef
                              | ast.Pass) and not _is_docstring(s) for s in self.node.body):
            raise Unresolvable(f"class {self.name}: a statement in its body the reader "
                               "does not follow")
        hook = self.module.reader.lookup(self, "__init_subclass__", start=1, bind_to=self)
        self.module.reader.call(hook, [], {})
        self.state = "created"

    def check_decorators(self) -> None:
        """The class statement binds the class itself: it has no decorator but dataclass."""
        if any(self.module.reader.evaluate(d, self.scope) is not dataclasses.dataclass
               for d in _decorator_names(self.node)):
            raise Unresolvable(f"class {self.name}: a decorator other than dataclass")

    def own(self, name: str) -> Any:
        """The value the class body itself binds to `name` (or None)."""
        if name in self.set:
            return self.set[name]
        if name not in self.names:
            return None
        binding = self.names[name][-1]
        return self.module.reader.binding_value(self.module, binding,
                                                ClassScope(self, binding.position), owner=self)

    def has_own(self, name: str) -> bool:
        return name in self.set or name in self.names


def _decorator_names(node: ast.ClassDef) -> list[ast.expr]:
    """A class's decorators, a call `dataclass(frozen=True)` as its callee (its arguments
    must be constants)."""
    found = []
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call):
            if decorator.args or not all(isinstance(k.value, ast.Constant)
                                         for k in decorator.keywords):
                raise Unresolvable("a class decorator called with computed arguments")
            decorator = decorator.func
        found.append(decorator)
    return found


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _linearize(cls: Any, bases: list[Any]) -> list[Any]:
    """C3 linearization, as Python orders a class's bases."""
    sequences = [list(b.mro()) if isinstance(b, ReadClass) else [b, object] for b in bases]
    sequences.append(list(bases))
    order = [cls]
    while any(sequences):
        sequences = [s for s in sequences if s]
        for sequence in sequences:
            head = sequence[0]
            if not any(head in s[1:] for s in sequences):
                break
        else:
            raise Unresolvable(f"class {cls.name}: no consistent method resolution order")
        order.append(head)
        for sequence in sequences:
            if sequence[0] is head:
                del sequence[0]
    if order[-1] is not object:
        order.append(object)
    return order


class Function:
    """A function statement of a read module; `kind` says how its class exposes it."""

    def __init__(self, module: ReadModule, node: ast.FunctionDef | ast.AsyncFunctionDef,
                 owner: ReadClass | None, kind: str):
        self.module = module
        self.node = node
        self.owner = owner
        self.kind = kind
        """"function", "classmethod", "staticmethod", "property", or "decorated" (by a
        decorator the reader does not know)."""


class Bound:
    """A read function bound to its first argument (a class method to its class)."""

    def __init__(self, function: Function, first: Any):
        self.function = function
        self.first = first


class Super:
    """`super()` in a read function of `owner` called on `first`."""

    def __init__(self, owner: ReadClass, first: Any):
        self.owner = owner
        self.first = first


class RealMethod:
    """A side-effect-free method of a built-in value (PURE_METHODS)."""

    def __init__(self, value: Any, name: str):
        self.value = value
        self.name = name


class Scope:
    def lookup(self, name: str) -> Any:
        raise NotImplementedError

    def function_frame(self) -> FunctionScope:
        raise Unresolvable("super() outside a method")


class ModuleScope(Scope):
    def __init__(self, module: ReadModule, position: int):
        self.module = module
        self.position = position

    def lookup(self, name: str) -> Any:
        return self.module.global_value(name, self.position)


class ClassScope(Scope):
    """A class body at `position`: the names it bound before, then the module's globals as
    the class statement sees them."""

    def __init__(self, cls: ReadClass, position: int):
        self.cls = cls
        self.position = position

    def lookup(self, name: str) -> Any:
        before = [b for b in self.cls.names.get(name, ()) if b.position < self.position]
        if before:
            return self.cls.module.reader.binding_value(
                self.cls.module, before[-1], ClassScope(self.cls, before[-1].position),
                owner=self.cls)
        return self.cls.scope.lookup(name)

    def enclosing_function_scope(self) -> Scope:
        """Where a comprehension in the class body looks names up: class bodies are no
        enclosing scope for it."""
        scope = self.cls.scope
        while isinstance(scope, ClassScope):
            scope = scope.cls.scope
        return scope


class FunctionScope(Scope):
    def __init__(self, function: Function, local: dict[str, Any], first: Any):
        self.function = function
        self.local = local
        self.first = first

    def lookup(self, name: str) -> Any:
        if name in self.local:
            return self.local[name]
        return self.function.module.global_value(name)

    def function_frame(self) -> FunctionScope:
        return self


class ComprehensionScope(Scope):
    def __init__(self, local: dict[str, Any], parent: Scope):
        self.local = local
        self.parent = parent

    def lookup(self, name: str) -> Any:
        if name in self.local:
            return self.local[name]
        return self.parent.lookup(name)

    def function_frame(self) -> FunctionScope:
        return self.parent.function_frame()


class Reader:
    """Reads modules from source, each once; `intrinsics` maps real functions (of IMPORTED
    modules) to what calling them does to read values (e.g. settings.adopt on a read
    class)."""

    def __init__(self, intrinsics: Mapping[Callable[..., Any], Callable[..., Any]]):
        self.intrinsics = dict(intrinsics)
        self.modules: dict[str, Any] = {}
        self.trees: dict[Path, ast.Module] = {}
        self.checked: set[str] = set()
        self.depth = 0

    # -- modules ---------------------------------------------------------------------------
    def tree(self, path: Path) -> ast.Module:
        if path not in self.trees:
            try:
                self.trees[path] = ast.parse(path.read_text(), str(path))
            except (OSError, SyntaxError, ValueError) as error:
                raise Unresolvable(f"{path}: {error}") from None
        return self.trees[path]

    def load(self, name: str, path: Path) -> ReadModule:
        """The file at `path` read as a module of its own named `name` (a plugin file, as
        the registry loads it), its imports checked (`check_imports`)."""
        module = ReadModule(self, name, path, self.tree(path), is_package=False)
        self.modules[name] = module
        self.check_imports(module)
        return module

    def module(self, name: str) -> Any:
        """The module `name` as an import in read code binds it."""
        if name in self.modules:
            return self.modules[name]
        if name in IMPORTED:
            value: Any = importlib.import_module(name)
        elif name == "benchsuite" or name.startswith("benchsuite."):
            try:
                spec = importlib.util.find_spec(name)
            except ImportError:
                spec = None
            if spec is None or not spec.origin or not spec.origin.endswith(".py"):
                raise Unresolvable(f"no module {name} to read")
            path = Path(spec.origin)
            value = ReadModule(self, name, path, self.tree(path),
                               is_package=spec.submodule_search_locations is not None)
        else:
            top = name.partition(".")[0]
            if importlib.util.find_spec(top) is None:  # finds, imports nothing
                raise Unresolvable(f"module {top} is not installed")
            value = Opaque(name)
        self.modules[name] = value
        return value

    def check_imports(self, module: ReadModule) -> None:
        """Every import the module runs when loaded, and those of the benchsuite modules it
        imports, finds its module (and, from a benchsuite module, its name): an import
        that would fail makes the file unreadable here (the registry lists such a file as
        unavailable, with its error)."""
        if module.name in self.checked:
            return
        self.checked.add(module.name)
        for node in _import_statements(module.tree.body):
            if isinstance(node, ast.ImportFrom):
                if node.level or node.module is None or any(a.name == "*" for a in node.names):
                    raise Unresolvable(f"{module.path}: a relative or star import")
                source = self.module(node.module)
                if isinstance(source, ModuleType):  # imported: it has them, or fails here
                    for alias in node.names:
                        self.import_from(node.module, alias.name)
                elif isinstance(source, ReadModule):
                    self.check_imports(source)
                    for alias in node.names:  # bound there (not evaluated), or a submodule
                        if alias.name not in source.names:
                            if not source.is_package:
                                raise Unresolvable(f"{module.path}: {node.module} has no "
                                                   f"{alias.name}")
                            value = self.module(f"{node.module}.{alias.name}")
                            if isinstance(value, ReadModule):
                                self.check_imports(value)
            else:
                for alias in node.names:
                    parts = alias.name.split(".")
                    for end in range(1, len(parts) + 1):
                        value = self.module(".".join(parts[:end]))
                        if isinstance(value, ReadModule):
                            self.check_imports(value)

    def import_from(self, module_name: str, name: str) -> Any:
        source = self.module(module_name)
        if isinstance(source, ReadModule):
            return source.attribute(name)
        if isinstance(source, Opaque):
            return Opaque(f"{module_name}.{name}")
        if hasattr(source, name):
            return getattr(source, name)
        if not hasattr(source, "__path__"):  # not a package: no submodule either
            raise Unresolvable(f"module {module_name} has no {name}")
        return self.module(f"{module_name}.{name}")

    def builtin(self, name: str, where: str) -> Any:
        if name in PURE_BUILTINS:
            return PURE_BUILTINS[name]
        if name in DECORATORS:
            return DECORATORS[name]
        if name == "object":
            return object
        if name == "super":
            return super
        raise Unresolvable(f"{where}: the name {name} is not one the reader knows")

    def binding_value(self, module: ReadModule, binding: Binding, scope: Scope,
                      owner: ReadClass | None = None) -> Any:
        if binding.state == "done":
            return binding.value
        if binding.state == "busy":
            raise Unresolvable(f"{module.name}: a name whose value depends on itself")
        binding.state = "busy"
        try:
            binding.value = self.bound_value(module, binding, scope, owner)
        except Unresolvable:
            binding.state = "new"  # a caller that goes on without it may ask again
            raise
        binding.state = "done"
        return binding.value

    def bound_value(self, module: ReadModule, binding: Binding, scope: Scope,
                    owner: ReadClass | None) -> Any:
        if binding.how == "import":
            value = self.module(binding.source)
        elif binding.how == "from":
            source, _, name = binding.source.partition(":")
            if source.startswith("."):
                raise Unresolvable(f"{module.name}: a relative import")
            value = self.import_from(source, name)
        elif binding.how == "class":
            assert isinstance(binding.node, ast.ClassDef)
            qualname = (f"{owner.qualname}.{binding.node.name}" if owner
                        else binding.node.name)
            value = module.read_class(binding.node, scope, qualname)
        elif binding.how == "function":
            assert isinstance(binding.node, ast.FunctionDef | ast.AsyncFunctionDef)
            value = Function(module, binding.node, owner, self.function_kind(binding.node,
                                                                             scope, owner))
        elif binding.how == "assign":
            assert isinstance(binding.node, ast.Assign | ast.AnnAssign)
            assert binding.node.value is not None
            value = _pick(self.evaluate(binding.node.value, scope), binding.path)
        else:
            raise Unresolvable(f"{module.name}: a name bound by a statement the reader does "
                               "not follow")
        return value

    def function_kind(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope,
                      owner: ReadClass | None) -> str:
        if isinstance(node, ast.AsyncFunctionDef):
            return "decorated"
        if owner is not None and node.name == "__init_subclass__":
            return "classmethod"
        if not node.decorator_list:
            return "function"
        if len(node.decorator_list) == 1 and isinstance(node.decorator_list[0], ast.Name):
            try:
                decorator = self.evaluate(node.decorator_list[0], scope)
            except Unresolvable:
                return "decorated"
            for kind, known in DECORATORS.items():
                if decorator is known:
                    return kind
        return "decorated"

    # -- classes -----------------------------------------------------------------------------
    def lookup(self, cls: ReadClass, name: str, *, start: int = 0, bind_to: Any = None,
               default: Any = Unresolvable) -> Any:
        """The attribute `name` of `cls` as `getattr` finds it (bound to `bind_to`, the
        class itself by default), searching its MRO from `start`; `default` if no class has
        it (Unresolvable: raise)."""
        cls.create()
        bind_to = cls if bind_to is None else bind_to
        for base in cls.mro()[start:]:
            if base is object:
                break
            if base.has_own(name):
                return self.descriptor(base.own(name), bind_to)
        if name == "__init_subclass__":
            return _nothing
        if name.startswith("__"):
            raise Unresolvable(f"class {cls.name}: the attribute {name}")
        if default is Unresolvable:
            raise Unresolvable(f"class {cls.name} has no attribute {name}")
        return default

    def descriptor(self, value: Any, cls: Any) -> Any:
        if isinstance(value, Function):
            if value.kind == "classmethod":
                return Bound(value, cls)
            if value.kind == "decorated":
                raise Unresolvable(f"{value.node.name}: a decorator the reader does not know")
        return value

    def subclass_of(self, cls: ReadClass, bases: Iterable[ReadClass]) -> bool:
        """Whether `cls` derives from one of `bases`. A base from outside benchsuite is taken
        to derive from none of them: only code that imports benchsuite could make it."""
        return any(base in cls.mro() for base in bases)

    # -- evaluation -------------------------------------------------------------------------
    def call(self, function: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(function, Bound):
            return self.run(function.function, [function.first, *args], kwargs)
        if isinstance(function, Function):
            if function.kind not in ("function", "staticmethod"):
                raise Unresolvable(f"{function.node.name}: called as a {function.kind}")
            return self.run(function, args, kwargs)
        if isinstance(function, RealMethod):
            _require_real([*args, *kwargs.values()])
            return _real_call(getattr(function.value, function.name), args, kwargs)
        if function is _nothing:
            return None
        if _hashable(function) and function in self.intrinsics:
            return self.intrinsics[function](self, *args, **kwargs)
        if _pure(function):
            _require_real([*args, *kwargs.values()])
            return _real_call(function, args, kwargs)
        raise Unresolvable("a call of a function the reader does not know")

    def run(self, function: Function, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Interpret a call of the read `function`."""
        node = function.node
        if any(isinstance(n, ast.Yield | ast.YieldFrom | ast.Await)
               for n in ast.walk(node)):
            raise Unresolvable(f"{node.name}: a generator or coroutine")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise Unresolvable(f"{node.name}: calls nested too deep")
            local = self.arguments(function, args, kwargs)
            first = args[0] if args else None
            scope = FunctionScope(function, local, first)
            result = self.execute(node.body, scope)
            return None if result is _NO_RETURN else result
        finally:
            self.depth -= 1

    def arguments(self, function: Function, args: list[Any], kwargs: dict[str, Any]
                  ) -> dict[str, Any]:
        spec = function.node.args
        positional = [*spec.posonlyargs, *spec.args]
        defaults = dict(zip([a.arg for a in positional][len(positional) - len(spec.defaults):],
                            spec.defaults))
        defaults.update({a.arg: d for a, d in zip(spec.kwonlyargs, spec.kw_defaults)
                         if d is not None})
        local: dict[str, Any] = {}
        if len(args) > len(positional) and spec.vararg is None:
            raise Unresolvable(f"{function.node.name}: too many arguments")
        for parameter, value in zip(positional, args):
            local[parameter.arg] = value
        if spec.vararg is not None:
            local[spec.vararg.arg] = tuple(args[len(positional):])
        extra = {}
        for key, value in kwargs.items():
            if key in local:
                raise Unresolvable(f"{function.node.name}: {key} given twice")
            if any(key == a.arg for a in [*spec.args, *spec.kwonlyargs]):
                local[key] = value
            elif spec.kwarg is not None:
                extra[key] = value
            else:
                raise Unresolvable(f"{function.node.name}: no parameter {key}")
        if spec.kwarg is not None:
            local[spec.kwarg.arg] = extra
        module_scope = ModuleScope(function.module, _EVERYWHERE)
        for parameter in [*positional, *spec.kwonlyargs]:
            if parameter.arg not in local:
                if parameter.arg not in defaults:
                    raise Unresolvable(f"{function.node.name}: {parameter.arg} missing")
                local[parameter.arg] = self.evaluate(defaults[parameter.arg], module_scope)
        return local

    def execute(self, statements: list[ast.stmt], scope: FunctionScope) -> Any:
        for node in statements:
            if isinstance(node, ast.Return):
                return None if node.value is None else self.evaluate(node.value, scope)
            if isinstance(node, ast.Expr):
                if not _is_docstring(node):
                    self.evaluate(node.value, scope)
            elif isinstance(node, ast.If):
                branch = node.body if self.truth(self.evaluate(node.test, scope)) else node.orelse
                result = self.execute(branch, scope)
                if result is not _NO_RETURN:
                    return result
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                value = self.evaluate(node.value, scope)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name, path in _target_names(target):
                        scope.local[name] = _pick(value, path)
            elif not isinstance(node, ast.Pass):
                raise Unresolvable(f"line {node.lineno}: a statement the reader does not "
                                   "interpret")
        return _NO_RETURN

    def truth(self, value: Any) -> bool:
        if isinstance(value, ReadClass | Function | Bound | ReadModule):
            return True
        _require_real([value])
        return bool(value)

    def attribute(self, value: Any, name: str) -> Any:
        if isinstance(value, ReadClass):
            if name == "__name__":
                return value.name
            return self.lookup(value, name)
        if isinstance(value, Super):
            if not isinstance(value.first, ReadClass):
                raise Unresolvable("super() on an instance")
            start = value.first.mro().index(value.owner) + 1
            return self.lookup(value.first, name, start=start, bind_to=value.first)
        if isinstance(value, ReadModule):
            return value.attribute(name)
        if isinstance(value, Opaque):
            return Opaque(f"{value.name}.{name}")
        if isinstance(value, ModuleType) and value.__name__ in IMPORTED:
            if hasattr(value, name):
                return getattr(value, name)
            return self.module(f"{value.__name__}.{name}")
        if name in PURE_METHODS.get(type(value), ()):
            return RealMethod(value, name)
        raise Unresolvable(f"the attribute {name} of a value the reader does not follow")

    def evaluate(self, node: ast.expr, scope: Scope) -> Any:  # noqa: C901 - one case a node
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return scope.lookup(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(self.evaluate(node.value, scope), node.attr)
        if isinstance(node, ast.Subscript):
            container = self.evaluate(node.value, scope)
            index = self.evaluate(node.slice, scope)
            _require_real([container, index])
            return _real_call(operator.getitem, [container, index], {})
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.evaluate(p, scope)
                     for p in (node.lower, node.upper, node.step)]
            _require_real(parts)
            return slice(*parts)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = self.items(node.elts, scope)
            kind = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
            return _real_call(kind, [items], {})
        if isinstance(node, ast.Dict):
            result: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values):
                if key is None:
                    mapping = self.evaluate(value, scope)
                    if not isinstance(mapping, Mapping):
                        raise Unresolvable("** of a value the reader does not follow")
                    result.update(mapping)
                else:
                    key_value = self.evaluate(key, scope)
                    _require_real([key_value])
                    result[key_value] = self.evaluate(value, scope)
            return result
        if isinstance(node, ast.BinOp):
            left, right = self.evaluate(node.left, scope), self.evaluate(node.right, scope)
            _require_real([left, right])
            return _real_call(_operator(node.op), [left, right], {})
        if isinstance(node, ast.UnaryOp):
            operand = self.evaluate(node.operand, scope)
            if isinstance(node.op, ast.Not):
                return not self.truth(operand)
            _require_real([operand])
            return _real_call(_operator(node.op), [operand], {})
        if isinstance(node, ast.BoolOp):
            last: Any = None
            for operand in node.values:
                last = self.evaluate(operand, scope)
                if self.truth(last) == isinstance(node.op, ast.Or):
                    return last
            return last
        if isinstance(node, ast.Compare):
            left = self.evaluate(node.left, scope)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.evaluate(right_node, scope)
                if not self.compare(op, left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            test = self.truth(self.evaluate(node.test, scope))
            return self.evaluate(node.body if test else node.orelse, scope)
        if isinstance(node, ast.JoinedStr):
            return "".join(self.formatted(part, scope) for part in node.values)
        if isinstance(node, ast.Call):
            return self.evaluate_call(node, scope)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            return self.comprehension(node, scope)
        raise Unresolvable(f"line {getattr(node, 'lineno', '?')}: an expression the reader "
                           "does not evaluate")

    def items(self, elements: list[ast.expr], scope: Scope) -> list[Any]:
        items = []
        for element in elements:
            if isinstance(element, ast.Starred):
                items.extend(_real_items(self.evaluate(element.value, scope)))
            else:
                items.append(self.evaluate(element, scope))
        return items

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> bool:
        if isinstance(op, ast.Is | ast.IsNot):
            for value in (left, right):
                if isinstance(value, Bound | Opaque | Super | RealMethod):
                    raise Unresolvable("`is` on a value made anew on every access")
            same = left is right
            return same if isinstance(op, ast.Is) else not same
        _require_real([left, right])
        if isinstance(op, ast.In | ast.NotIn):
            inside = _real_call(operator.contains, [right, left], {})
            return bool(inside) if isinstance(op, ast.In) else not inside
        return bool(_real_call(_operator(op), [left, right], {}))

    def formatted(self, part: ast.expr, scope: Scope) -> str:
        if isinstance(part, ast.Constant):
            return str(part.value)
        assert isinstance(part, ast.FormattedValue)
        value = self.evaluate(part.value, scope)
        _require_real([value])
        convert: dict[int, Callable[[Any], Any]] = {-1: lambda v: v, ord("s"): str,
                                                    ord("r"): repr, ord("a"): ascii}
        value = _real_call(convert[part.conversion], [value], {})
        spec = "" if part.format_spec is None else self.evaluate(part.format_spec, scope)
        return _real_call(format, [value, spec], {})

    def evaluate_call(self, node: ast.Call, scope: Scope) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id == "super" and not node.args:
            if scope.lookup("super") is not super:
                raise Unresolvable("super is rebound")
            frame = scope.function_frame()
            if frame.function.owner is None:
                raise Unresolvable("super() outside a class")
            return Super(frame.function.owner, frame.first)
        function = self.evaluate(node.func, scope)
        args = self.items(node.args, scope)
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            value = self.evaluate(keyword.value, scope)
            if keyword.arg is None:
                if not isinstance(value, Mapping):
                    raise Unresolvable("** of a value the reader does not follow")
                kwargs.update(value)
            else:
                kwargs[keyword.arg] = value
        return self.call(function, args, kwargs)

    def comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp
                      | ast.DictComp, scope: Scope) -> Any:
        # the first iterable is evaluated where the comprehension stands, the rest in its
        # own scope, which a class body does not enclose
        parent = scope.enclosing_function_scope() if isinstance(scope, ClassScope) else scope
        results: list[Any] = []

        def generate(index: int, inner: ComprehensionScope) -> None:
            if index == len(node.generators):
                if isinstance(node, ast.DictComp):
                    results.append((self.evaluate(node.key, inner),
                                    self.evaluate(node.value, inner)))
                else:
                    results.append(self.evaluate(node.elt, inner))
                return
            generator = node.generators[index]
            if generator.is_async:
                raise Unresolvable("an async comprehension")
            iterable = self.evaluate(generator.iter, scope if index == 0 else inner)
            for item in _real_items(iterable):
                local = dict(inner.local)
                for name, path in _target_names(generator.target):
                    local[name] = _pick(item, path)
                step = ComprehensionScope(local, parent)
                if all(self.truth(self.evaluate(test, step)) for test in generator.ifs):
                    generate(index + 1, step)

        generate(0, ComprehensionScope({}, parent))
        if isinstance(node, ast.DictComp):
            _require_real([key for key, _ in results])
            return dict(results)
        if isinstance(node, ast.SetComp):
            _require_real(results)
            return set(results)
        return results if isinstance(node, ast.ListComp) else tuple(results)


_NO_RETURN = object()


def _nothing(*args: Any, **kwargs: Any) -> None:
    """object.__init_subclass__: does nothing."""


def _import_statements(statements: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module runs when it is loaded: at its top level and in the blocks and
    class bodies there, not in function bodies."""
    for node in statements:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _import_statements([child])
                elif isinstance(child, ast.ExceptHandler):
                    yield from _import_statements(child.body)


def _operator(op: ast.AST) -> Callable[..., Any]:
    if type(op) not in OPERATORS:
        raise Unresolvable(f"the operator {type(op).__name__}")
    return OPERATORS[type(op)]


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _pure(function: Any) -> bool:
    """Whether calling `function` computes a value and nothing else: a whitelisted builtin,
    a function of `math`, or a frozen dataclass of an IMPORTED module (a constraint such
    as settings.AtLeast)."""
    if not _hashable(function):
        return False
    if function in PURE_BUILTINS.values():
        return True
    if getattr(function, "__module__", None) == "math" or function in vars(math).values():
        return callable(function)
    return (isinstance(function, type) and dataclasses.is_dataclass(function)
            and function.__module__ in IMPORTED
            and function.__dataclass_params__.frozen)  # type: ignore[attr-defined]


def _require_real(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, ReadClass | Function | Bound | Super | Opaque | ReadModule
                      | RealMethod):
            raise Unresolvable("an operation on a value the reader only names")


def _real_items(value: Any) -> list[Any]:
    _require_real([value])
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        if isinstance(value, str):
            return list(value)
        raise Unresolvable("iterating a value the reader does not follow")
    return list(value)


def _real_call(function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception as error:  # the code would raise when run: the importer reports it
        raise Unresolvable(f"{type(error).__name__}: {error}") from None
