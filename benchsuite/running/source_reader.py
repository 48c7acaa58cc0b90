"""Python modules read from their source, not run: what a class's definition says (its bases,
its attributes, what its class methods return) from the code's syntax tree, for the parts
of Python a plugin's class definition uses.

The catalog (benchsuite.running.static_catalog) reads the plugins this way so that
`benchsuite list` does not import them, and with them torch. The reader follows imports
between benchsuite modules and plugin files; a module it may import is one of `IMPORTED`
(torch-free and without side effects); any other module (torch, numpy, …) is only
looked up (it must be installed) and stands as an opaque name. What a module binds is
read lazily: a class (`ReadClass`) with its bases, its MRO and the `__init_subclass__`
its bases run, a function (`Function`), a class method bound to its class (`Bound`),
and values computed by the evaluator (benchsuite.running.source_eval); calling a read
function interprets its body.

Whatever the reader cannot settle from the text — a call of an unknown function, an
operation on an opaque value, a statement it does not interpret, a module that is not
installed, a decorator or metaclass it does not know — raises `Unresolvable`, and its
caller imports the code instead; the reader never guesses a value.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from benchsuite.running.source_eval import (
    IMPORTED,
    NO_RETURN,
    PURE_BUILTINS,
    Evaluator,
    FunctionScope,
    Named,
    Scope,
    Unresolvable,
    is_docstring,
    pick,
    target_names,
)

DECORATORS = {"classmethod": classmethod, "staticmethod": staticmethod, "property": property}
MAX_DEPTH = 64
_EVERYWHERE = 1 << 62
"""The position of code that runs once its module is loaded (a function body): it sees
every global the module binds."""


class Opaque(Named):
    """A module outside benchsuite (torch, numpy, …) or a name taken from one."""

    truthy = None
    stable = False

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
                for name, path in target_names(target):
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


class ReadModule(Named):
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


class ReadClass(Named):
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
        """"new", "creating" (its bases' hooks running), "created", or "failed"."""

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
        if self.state == "failed":
            raise Unresolvable(f"class {self.name}: its creation cannot be read")
        if self.state != "new":
            return
        self.state = "creating"
        try:
            self.run_creation()
        except Unresolvable:
            self.state = "failed"  # a caller that goes on without it must not see it half made
            raise
        self.state = "created"

    def run_creation(self) -> None:
        if any(isinstance(base, Opaque) for base in self.mro()):
            # a base from outside may bring a metaclass (an Enum's) that remakes the class
            raise Unresolvable(f"class {self.name}: a base the reader cannot read")
        for base in self.mro()[1:-1]:  # read classes, then object
            base.create()
        self.check_decorators()
        if any(not isinstance(s, ast.Assign | ast.AnnAssign | ast.FunctionDef | ast.ClassDef
                              | ast.Pass) and not is_docstring(s) for s in self.node.body):
            raise Unresolvable(f"class {self.name}: a statement in its body the reader "
                               "does not follow")
        if any(name.startswith("__") and binding.how == "assign"
               for name, bindings in self.names.items() for binding in bindings):
            # __module__, __slots__, __hash__ = None, …: Python's machinery reads them
            raise Unresolvable(f"class {self.name}: a special attribute set in its body")
        hook = self.module.reader.lookup(self, "__init_subclass__", start=1, bind_to=self)
        self.module.reader.call(hook, [], {})

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


class Function(Named):
    """A function statement of a read module; `kind` says how its class exposes it."""

    def __init__(self, module: ReadModule, node: ast.FunctionDef | ast.AsyncFunctionDef,
                 owner: ReadClass | None, kind: str):
        self.module = module
        self.node = node
        self.owner = owner
        self.kind = kind
        """"function", "classmethod", "staticmethod", "property", or "decorated" (by a
        decorator the reader does not know)."""


class Bound(Named):
    """A read function bound to its first argument (a class method to its class)."""

    stable = False

    def __init__(self, function: Function, first: Any):
        self.function = function
        self.first = first


class Super(Named):
    """`super()` in a read function of `owner` called on `first`."""

    truthy = None
    stable = False

    def __init__(self, owner: ReadClass, first: Any):
        self.owner = owner
        self.first = first


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

    def comprehension_parent(self) -> Scope:
        """A class body is no enclosing scope for a comprehension in it."""
        return self.cls.scope.comprehension_parent()


class Reader(Evaluator):
    """Reads modules from source, each once; `intrinsics` maps real functions (of IMPORTED
    modules) to what calling them does to read values (e.g. settings.adopt on a read
    class), each called with the reader first."""

    def __init__(self, intrinsics: Mapping[Callable[..., Any], Callable[..., Any]]):
        super().__init__(intrinsics)
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
            value = pick(self.evaluate(binding.node.value, scope), binding.path)
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

    # -- what the evaluator leaves to the reader ------------------------------------------------
    def named_call(self, function: Named, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(function, Bound):
            return self.run(function.function, [function.first, *args], kwargs)
        if isinstance(function, Function):
            if function.kind not in ("function", "staticmethod"):
                raise Unresolvable(f"{function.node.name}: called as a {function.kind}")
            return self.run(function, args, kwargs)
        return super().named_call(function, args, kwargs)

    def call(self, function: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if function is _nothing:
            return None
        return super().call(function, args, kwargs)

    def named_attribute(self, value: Named, name: str) -> Any:
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
        return super().named_attribute(value, name)

    def super_object(self, frame: FunctionScope) -> Any:
        if not isinstance(frame.function, Function) or frame.function.owner is None:
            raise Unresolvable("super() outside a class")
        return Super(frame.function.owner, frame.first)

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
            scope = FunctionScope(local, ModuleScope(function.module, _EVERYWHERE), function,
                                  args[0] if args else None)
            result = self.execute(node.body, scope)
            return None if result is NO_RETURN else result
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


