"""Python expressions and simple statements evaluated from their syntax tree, the evaluator
under the source reader (benchsuite.running.source_reader).

A value is a real Python value where the code computes it from literals, the modules the
reader imports (`IMPORTED`) and pure functions (`PURE_BUILTINS`, `math`, the frozen
dataclasses of IMPORTED modules, `PURE_METHODS`); anything else the code names — a class
or function read from source, a name from a module that is not imported — is a `Named`
value, passed around but never computed with: its attributes and calls are the reader's
(`Evaluator.named_attribute`, `Evaluator.named_call`). Statements are interpreted as far
as a plugin's class method needs: assignments, `if`, `return` and expressions.

Whatever the evaluator cannot settle from the text raises `Unresolvable`; it never guesses
a value.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any, ClassVar


class Unresolvable(Exception):
    """What the source reader cannot settle without running the code."""


IMPORTED = frozenset({"__future__", "typing", "math", "dataclasses", "collections.abc",
                      "benchsuite.core.settings", "benchsuite.running.config"})
"""Modules imported for real when read code imports them: torch-free, no side effects."""
PURE_BUILTINS = {name: getattr(builtins, name) for name in (
    "abs", "all", "any", "bool", "dict", "enumerate", "float", "frozenset", "int", "len",
    "list", "max", "min", "range", "repr", "reversed", "round", "set", "sorted", "str",
    "sum", "tuple", "zip")}
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
NO_RETURN = object()
"""What `Evaluator.execute` gives for statements that ran to their end."""


class Named:
    """A value the code names that the evaluator does not compute with."""

    truthy: ClassVar[bool | None] = True
    """Its truth value (as a class's or a function's), or None if unknown."""
    stable: ClassVar[bool] = True
    """Whether every access gives the same object, so that `is` on it means what it
    says (a bound method is made anew on every access)."""


class RealMethod(Named):
    """A side-effect-free method of a built-in value (PURE_METHODS)."""

    truthy = None
    stable = False

    def __init__(self, value: Any, name: str):
        self.value = value
        self.name = name


class Scope:
    """Where names are looked up."""

    def lookup(self, name: str) -> Any:
        raise NotImplementedError

    def function_frame(self) -> FunctionScope:
        raise Unresolvable("super() outside a method")

    def comprehension_parent(self) -> Scope:
        """The scope a comprehension written here looks names up in."""
        return self


class FunctionScope(Scope):
    """A call of a read function: its local names, then its module's globals. `function`
    and `first` (its first argument) are what `super()` in it needs."""

    def __init__(self, local: dict[str, Any], globals_scope: Scope, function: Any,
                 first: Any):
        self.local = local
        self.globals_scope = globals_scope
        self.function = function
        self.first = first

    def lookup(self, name: str) -> Any:
        if name in self.local:
            return self.local[name]
        return self.globals_scope.lookup(name)

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


class Evaluator:
    """Evaluates expressions and interprets statements; `intrinsics` maps real functions
    (of IMPORTED modules) to what calling them does to Named values (e.g. settings.adopt
    on a read class), each called with the evaluator first."""

    def __init__(self, intrinsics: Mapping[Callable[..., Any], Callable[..., Any]]):
        self.intrinsics = dict(intrinsics)

    # -- what the reader settles -------------------------------------------------------------
    def named_attribute(self, value: Named, name: str) -> Any:
        raise Unresolvable(f"the attribute {name} of a value the reader does not follow")

    def named_call(self, function: Named, args: list[Any], kwargs: dict[str, Any]) -> Any:
        raise Unresolvable("a call of a function the reader does not know")

    def super_object(self, frame: FunctionScope) -> Any:
        raise Unresolvable("super() outside a class")

    # -- calls and attributes ------------------------------------------------------------------
    def call(self, function: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(function, RealMethod):
            require_real([*args, *kwargs.values()])
            return real_call(getattr(function.value, function.name), args, kwargs)
        if isinstance(function, Named):
            return self.named_call(function, args, kwargs)
        if _hashable(function) and function in self.intrinsics:
            return self.intrinsics[function](self, *args, **kwargs)
        if _pure(function):
            require_real([*args, *kwargs.values()])
            return real_call(function, args, kwargs)
        raise Unresolvable("a call of a function the reader does not know")

    def attribute(self, value: Any, name: str) -> Any:
        if isinstance(value, Named):
            return self.named_attribute(value, name)
        if isinstance(value, ModuleType) and value.__name__ in IMPORTED:
            if hasattr(value, name):
                return getattr(value, name)
        elif name in PURE_METHODS.get(type(value), ()):
            return RealMethod(value, name)
        raise Unresolvable(f"the attribute {name} of a value the reader does not follow")

    def truth(self, value: Any) -> bool:
        if isinstance(value, Named):
            if value.truthy is None:
                raise Unresolvable("the truth of a value the reader does not follow")
            return value.truthy
        return bool(value)

    # -- statements ----------------------------------------------------------------------------
    def execute(self, statements: list[ast.stmt], scope: FunctionScope) -> Any:
        """Run a function body's statements: what a `return` gives, else NO_RETURN."""
        for node in statements:
            if isinstance(node, ast.Return):
                return None if node.value is None else self.evaluate(node.value, scope)
            if isinstance(node, ast.Expr):
                if not is_docstring(node):
                    self.evaluate(node.value, scope)
            elif isinstance(node, ast.If):
                branch = node.body if self.truth(self.evaluate(node.test, scope)) else node.orelse
                result = self.execute(branch, scope)
                if result is not NO_RETURN:
                    return result
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                value = self.evaluate(node.value, scope)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name, path in target_names(target):
                        scope.local[name] = pick(value, path)
            elif not isinstance(node, ast.Pass):
                raise Unresolvable(f"line {node.lineno}: a statement the reader does not "
                                   "interpret")
        return NO_RETURN

    # -- expressions ---------------------------------------------------------------------------
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
            require_real([container, index])
            return real_call(operator.getitem, [container, index], {})
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.evaluate(p, scope)
                     for p in (node.lower, node.upper, node.step)]
            require_real(parts)
            return slice(*parts)
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = self.items(node.elts, scope)
            kind = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
            return real_call(kind, [items], {})
        if isinstance(node, ast.Dict):
            return self.dictionary(node, scope)
        if isinstance(node, ast.BinOp):
            left, right = self.evaluate(node.left, scope), self.evaluate(node.right, scope)
            require_real([left, right])
            return real_call(_operator(node.op), [left, right], {})
        if isinstance(node, ast.UnaryOp):
            operand = self.evaluate(node.operand, scope)
            if isinstance(node.op, ast.Not):
                return not self.truth(operand)
            require_real([operand])
            return real_call(_operator(node.op), [operand], {})
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
                items.extend(real_items(self.evaluate(element.value, scope)))
            else:
                items.append(self.evaluate(element, scope))
        return items

    def dictionary(self, node: ast.Dict, scope: Scope) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values):
            if key is None:
                mapping = self.evaluate(value, scope)
                if not isinstance(mapping, Mapping):
                    raise Unresolvable("** of a value the reader does not follow")
                result.update(mapping)
            else:
                key_value = self.evaluate(key, scope)
                require_real([key_value])
                result[key_value] = self.evaluate(value, scope)
        return result

    def compare(self, op: ast.cmpop, left: Any, right: Any) -> bool:
        if isinstance(op, ast.Is | ast.IsNot):
            if any(isinstance(v, Named) and not v.stable for v in (left, right)):
                raise Unresolvable("`is` on a value made anew on every access")
            same = left is right
            return same if isinstance(op, ast.Is) else not same
        require_real([left, right])
        if isinstance(op, ast.In | ast.NotIn):
            inside = real_call(operator.contains, [right, left], {})
            return bool(inside) if isinstance(op, ast.In) else not inside
        return bool(real_call(_operator(op), [left, right], {}))

    def formatted(self, part: ast.expr, scope: Scope) -> str:
        if isinstance(part, ast.Constant):
            return str(part.value)
        assert isinstance(part, ast.FormattedValue)
        value = self.evaluate(part.value, scope)
        require_real([value])
        convert: dict[int, Callable[[Any], Any]] = {-1: lambda v: v, ord("s"): str,
                                                    ord("r"): repr, ord("a"): ascii}
        value = real_call(convert[part.conversion], [value], {})
        spec = "" if part.format_spec is None else self.evaluate(part.format_spec, scope)
        return real_call(format, [value, spec], {})

    def evaluate_call(self, node: ast.Call, scope: Scope) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id == "super" and not node.args:
            if scope.lookup("super") is not super:
                raise Unresolvable("super is rebound")
            return self.super_object(scope.function_frame())
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
        parent = scope.comprehension_parent()
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
            for item in real_items(iterable):
                local = dict(inner.local)
                for name, path in target_names(generator.target):
                    local[name] = pick(item, path)
                step = ComprehensionScope(local, parent)
                if all(self.truth(self.evaluate(test, step)) for test in generator.ifs):
                    generate(index + 1, step)

        generate(0, ComprehensionScope({}, parent))
        if isinstance(node, ast.DictComp):
            require_real([key for key, _ in results])
            return dict(results)
        if isinstance(node, ast.SetComp):
            require_real(results)
            return set(results)
        return results if isinstance(node, ast.ListComp) else tuple(results)


def target_names(target: ast.expr, path: tuple[int, ...] = ()
                 ) -> Iterator[tuple[str, tuple[int, ...]]]:
    """The names an assignment target binds, each with where it sits in the value (a path
    of indices into nested tuples; (-1,): not plainly bound, an attribute or a starred
    target)."""
    if isinstance(target, ast.Name):
        yield target.id, path
    elif isinstance(target, ast.Tuple | ast.List) and not any(
            isinstance(e, ast.Starred) for e in target.elts):
        for index, element in enumerate(target.elts):
            yield from target_names(element, (*path, index))
    else:
        for inner in ast.walk(target):
            if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                yield inner.id, (-1,)


def pick(value: Any, path: tuple[int, ...]) -> Any:
    """The part of `value` at `path` (`target_names`)."""
    for index in path:
        if index < 0:
            raise Unresolvable("an assignment to an attribute or a starred target")
        value = real_items(value)[index]
    return value


def is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def require_real(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, Named):
            raise Unresolvable("an operation on a value the reader only names")


def real_items(value: Any) -> list[Any]:
    require_real([value])
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        raise Unresolvable("iterating a value the reader does not follow")
    return list(value)


def real_call(function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception as error:  # the code would raise when run: the importer reports it
        raise Unresolvable(f"{type(error).__name__}: {error}") from None


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
    if function in vars(math).values():
        return callable(function)
    return (isinstance(function, type) and dataclasses.is_dataclass(function)
            and function.__module__ in IMPORTED
            and function.__dataclass_params__.frozen)  # type: ignore[attr-defined]
