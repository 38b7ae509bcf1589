"""``fastllm/_core.pyi`` covers the extension exactly: every exported name
has a stub, no stub names something the extension lacks, and functions and
methods take the parameters their stubs say."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from fastllm import _core

STUBS = Path(_core.__file__).with_name("_core.pyi")
if not STUBS.is_file():  # an installed wheel keeps the stubs beside the package sources
    STUBS = Path(__file__).resolve().parents[1] / "python" / "fastllm" / "_core.pyi"


def _tree() -> ast.Module:
    return ast.parse(STUBS.read_text(encoding="utf-8"))


def _is_helper(node: ast.stmt) -> bool:
    """The stubs' own private aliases and protocols (``_Texts`` ...), which
    the extension does not export."""
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id.startswith("_") and "TypeAlias" in ast.unparse(node.annotation)
    if isinstance(node, ast.ClassDef):
        return node.name.startswith("_") and any(ast.unparse(b) == "Protocol" for b in node.bases)
    return False


def _stubbed() -> dict[str, ast.stmt]:
    out: dict[str, ast.stmt] = {}
    for node in _tree().body:
        if _is_helper(node):
            continue
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
    return out


def _exported() -> set[str]:
    return {n for n in dir(_core) if not (n.startswith("__") and n.endswith("__"))} | {
        "__version__"
    }


def test_every_export_has_a_stub_and_no_stub_is_stale():
    stubbed, exported = set(_stubbed()), _exported()
    assert exported - stubbed == set(), "exported by _core but not in _core.pyi"
    assert stubbed - exported == set(), "in _core.pyi but not exported by _core"


def _params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    return [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg != "self"]


def _runtime_params(obj: object) -> list[str] | None:
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # no text signature to compare with
    return [p for p in sig.parameters if p not in ("self", "$self", "cls")]


@pytest.mark.parametrize("name", sorted(_stubbed()))
def test_stub_matches_the_extension(name):
    node = _stubbed()[name]
    obj = getattr(_core, name)
    if isinstance(node, ast.FunctionDef):
        assert _runtime_params(obj) in (None, _params(node)), name
    if isinstance(node, ast.ClassDef):
        methods = {
            n.name: n
            for n in node.body
            if isinstance(n, ast.FunctionDef)
            and not (n.name.startswith("__") and n.name.endswith("__"))
        }
        public = {n for n in dir(obj) if not n.startswith("_")}
        assert public == set(methods), name
        for m, fn in methods.items():
            if any(ast.unparse(d) == "property" for d in fn.decorator_list):
                continue
            assert _runtime_params(getattr(obj, m)) in (None, _params(fn)), f"{name}.{m}"
