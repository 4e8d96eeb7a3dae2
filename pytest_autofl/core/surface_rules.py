"""Static (AST) checks that surface code keeps the FLARE Client API and strategy contracts.

Unlike a presence-only check, each rule looks for the construct where it must be (a docstring that mentions
``flare.send`` satisfies nothing). Every violation names its rule, the file and the line.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

CLIENT_SCRIPT = "client_train.py"
STRATEGIES = "strategies.py"
MODEL = "model.py"
FORBIDDEN_MODULES = ("pytest_autofl", "subprocess", "socket", "ctypes", "multiprocessing", "shutil")
MODEL_ARGS = ("arch", "seed", "in_features", "num_classes")  # what the harness builds Net with
AGGREGATOR_METHODS = ("accept_model", "aggregate_model", "reset_stats")
# What a file may carry as data (AF109): ample for a method's constants and docstrings (the bundled surface's
# largest file has 1,193 characters of literals), far too little for a data set (a digits shard is ~29 KB).
MAX_SOURCE_BYTES, MAX_LITERAL_CHARS, MAX_LITERALS_CHARS, MAX_NUMBERS = 64 * 1024, 4096, 16 * 1024, 2000

RULES = {
    "AF100": "the file must parse as Python",
    "AF101": "flare.init() must be called",
    "AF102": "training must run in a `while flare.is_running():` loop",
    "AF103": "flare.receive() must be called inside the loop",
    "AF104": "flare.send(...) must be called inside the loop",
    "AF105": "every load_state_dict call must pass strict=True (a partial load hides bugs)",
    "AF106": "the loop needs an `if flare.is_evaluate():` branch that sends FLModel(metrics=...)",
    "AF107": "the training update must be FLModel(params_type=ParamsType.DIFF, meta=...) with "
    "'NUM_STEPS_CURRENT_ROUND' as a meta key (the aggregation weight)",
    "AF108": "surface code may not import harness or process/network modules",
    "AF109": "surface code may not carry data: its literals and its size are capped",
    "AF120": "strategies.py must define build_aggregator(knobs)",
    "AF121": "every ModelAggregator subclass must implement accept_model, aggregate_model, reset_stats",
    "AF130": "model.py must define class Net with __init__(self, arch, seed, in_features, num_classes)",
}


@dataclass(frozen=True)
class Violation:
    rule: str
    path: str
    line: int
    detail: str = ""

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.path}:{self.line}: {self.rule} {RULES[self.rule]}{extra}"


def _flare_aliases(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "nvflare.client"}
        elif isinstance(node, ast.ImportFrom) and node.module == "nvflare" and node.level == 0:
            names |= {a.asname or a.name for a in node.names if a.name == "client"}
    return names


def _is_flare_call(node: ast.AST, aliases: set[str], method: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in aliases
    )


def _calls(tree: ast.AST, aliases: set[str], method: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if _is_flare_call(node, aliases, method):
            assert isinstance(node, ast.Call)
            yield node


def _is_flmodel(node: ast.AST) -> TypeGuard[ast.Call]:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id == "FLModel") or (
        isinstance(f, ast.Attribute) and f.attr == "FLModel"
    )


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _dict_has_num_steps(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Dict) and any(
        isinstance(k, ast.Constant) and k.value == "NUM_STEPS_CURRENT_ROUND" for k in node.keys
    )


def _meta_has_num_steps(meta: ast.expr | None, scope: ast.AST) -> bool:
    """The meta passed to the update carries the key: a dict literal, or a variable that gets it in scope."""
    if _dict_has_num_steps(meta):
        return True
    if not isinstance(meta, ast.Name):
        return False
    for node in ast.walk(scope):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == meta.id for t in targets) and _dict_has_num_steps(
                node.value
            ):
                return True
            if any(
                isinstance(t, ast.Subscript)
                and isinstance(t.value, ast.Name)
                and t.value.id == meta.id
                and isinstance(t.slice, ast.Constant)
                and t.slice.value == "NUM_STEPS_CURRENT_ROUND"
                for t in targets
            ):
                return True
    return False


def _forbidden_imports(tree: ast.AST, path: str) -> list[Violation]:
    out: list[Violation] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out.extend(
                Violation("AF108", path, node.lineno, f"imports {module}")
                for module in modules
                if module.split(".")[0] in FORBIDDEN_MODULES
            )
    return out


def _embedded_data(tree: ast.AST, path: str) -> list[Violation]:
    constants = [n for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    texts = [(n.lineno, len(n.value)) for n in constants if isinstance(n.value, (str, bytes))]
    numbers = sum(1 for n in constants if isinstance(n.value, (int, float, complex)))
    out = [
        Violation("AF109", path, line, f"a literal of {size} characters (cap {MAX_LITERAL_CHARS})")
        for line, size in texts
        if size > MAX_LITERAL_CHARS
    ]
    if (total := sum(size for _, size in texts)) > MAX_LITERALS_CHARS:
        out.append(Violation("AF109", path, 1, f"{total} characters of literals (cap {MAX_LITERALS_CHARS})"))
    if numbers > MAX_NUMBERS:
        out.append(Violation("AF109", path, 1, f"{numbers} numeric constants (cap {MAX_NUMBERS})"))
    return out


def _checked(source: str, path: str, rules: Callable[[ast.Module, str], list[Violation]]) -> list[Violation]:
    """Parse once (a syntax error is AF100), then the import and data rules and the file's own rules."""
    if (size := len(source.encode())) > MAX_SOURCE_BYTES:
        return [Violation("AF109", path, 1, f"{size} bytes (cap {MAX_SOURCE_BYTES})")]
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [Violation("AF100", path, exc.lineno or 0, str(exc.msg))]
    return _forbidden_imports(tree, path) + _embedded_data(tree, path) + rules(tree, path)


def check_client_script(source: str, path: str = CLIENT_SCRIPT) -> list[Violation]:
    return _checked(source, path, _client_script_rules)


def _client_script_rules(tree: ast.Module, path: str) -> list[Violation]:
    out: list[Violation] = []
    aliases = _flare_aliases(tree)
    if not aliases:
        return [*out, Violation("AF101", path, 1, "no `import nvflare.client as flare`")]
    if not any(True for _ in _calls(tree, aliases, "init")):
        out.append(Violation("AF101", path, 1))
    loops = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.While) and _is_flare_call(n.test, aliases, "is_running")
    ]
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Attribute) and call.func.attr == "load_state_dict":
            strict = _keyword(call, "strict")
            if not (isinstance(strict, ast.Constant) and strict.value is True):
                out.append(Violation("AF105", path, call.lineno))
    if not loops:
        return [*out, Violation("AF102", path, 1)]
    loop = loops[0]
    if not any(True for _ in _calls(loop, aliases, "receive")):
        out.append(Violation("AF103", path, loop.lineno))
    sends = list(_calls(loop, aliases, "send"))
    if not sends:
        out.append(Violation("AF104", path, loop.lineno))
    if not any(
        isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "load_state_dict"
        for c in ast.walk(loop)
    ):
        out.append(Violation("AF105", path, loop.lineno, "no load_state_dict(..., strict=True) in the loop"))
    eval_ifs = [
        n for n in ast.walk(loop) if isinstance(n, ast.If) and _is_flare_call(n.test, aliases, "is_evaluate")
    ]
    if not any(
        _is_flmodel(m) and _keyword(m, "metrics") is not None
        for branch in eval_ifs
        for stmt in branch.body
        for m in ast.walk(stmt)
    ):
        out.append(Violation("AF106", path, eval_ifs[0].lineno if eval_ifs else loop.lineno))
    diff_models = [
        m
        for m in ast.walk(loop)
        if _is_flmodel(m)
        and isinstance(kind := _keyword(m, "params_type"), ast.Attribute)
        and kind.attr == "DIFF"
    ]
    if not any(_meta_has_num_steps(_keyword(m, "meta"), loop) for m in diff_models):
        out.append(Violation("AF107", path, diff_models[0].lineno if diff_models else loop.lineno))
    return out


def _class_index(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [
        b.id if isinstance(b, ast.Name) else b.attr
        for b in cls.bases
        if isinstance(b, (ast.Name, ast.Attribute))
    ]


def check_strategies(source: str, path: str = STRATEGIES) -> list[Violation]:
    return _checked(source, path, _strategies_rules)


def _strategies_rules(tree: ast.Module, path: str) -> list[Violation]:
    out: list[Violation] = []
    if not any(isinstance(n, ast.FunctionDef) and n.name == "build_aggregator" for n in tree.body):
        out.append(Violation("AF120", path, 1))
    classes = _class_index(tree)

    def chain(name: str, seen: frozenset[str] = frozenset()) -> list[ast.ClassDef]:
        if name not in classes or name in seen:
            return []
        cls = classes[name]
        return [cls] + [c for b in _base_names(cls) for c in chain(b, seen | {name})]

    def is_aggregator(name: str) -> bool:
        return any("ModelAggregator" in _base_names(c) for c in chain(name))

    for name, cls in classes.items():
        if not is_aggregator(name):
            continue
        defined = {f.name for c in chain(name) for f in c.body if isinstance(f, ast.FunctionDef)}
        missing = [m for m in AGGREGATOR_METHODS if m not in defined]
        if missing:
            out.append(Violation("AF121", path, cls.lineno, f"{name} lacks {', '.join(missing)}"))
    return out


def check_model(source: str, path: str = MODEL) -> list[Violation]:
    return _checked(source, path, _model_rules)


def _model_rules(tree: ast.Module, path: str) -> list[Violation]:
    out: list[Violation] = []
    net = _class_index(tree).get("Net")
    init = (
        next((f for f in net.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        if net
        else None
    )
    args = {a.arg for a in init.args.args} if init else set()
    if not set(MODEL_ARGS) <= args:
        out.append(Violation("AF130", path, net.lineno if net else 1))
    return out


CHECKS = {CLIENT_SCRIPT: check_client_script, STRATEGIES: check_strategies, MODEL: check_model}


def check_surface(surface_dir: Path) -> list[Violation]:
    """Run every rule over the surface files; a missing file is itself a violation."""
    out: list[Violation] = []
    for name, check in CHECKS.items():
        path = surface_dir / name
        try:
            source = path.read_text()
        except OSError as exc:
            out.append(Violation("AF100", str(path), 0, f"cannot read: {exc.strerror}"))
            continue
        out.extend(check(source, str(path)))
    return out
