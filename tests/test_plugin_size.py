"""Issue 23 item 5: plugins stay thin; engines belong to the core.

Lines of code are counted as in the issue's figures: non-blank lines of a plugin package's ``.py`` files outside
``tests/`` and ``scripts/``, without comments and docstrings (demo data is not Python, so it is aside).
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
LIMIT = 1800
SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIP_TOKENS:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def package_lines(plugin: Path) -> int:
    files = [f for f in plugin.rglob("*.py") if not {"tests", "scripts"} & set(f.relative_to(plugin).parts)]
    return sum(code_lines(f.read_text(encoding="utf-8")) for f in files)


def test_code_lines_ignores_comments_docstrings_and_blanks() -> None:
    source = '"""Module doc."""\n\n# a comment\ndef f(x):\n    """Doc\n    more."""\n    return (x +\n            1)  # trailing\n'
    assert code_lines(source) == 3


@pytest.mark.parametrize("plugin", sorted(p.name for p in PLUGINS.iterdir() if (p / "pyproject.toml").is_file()))
def test_plugin_package_is_thin(plugin: str) -> None:
    lines = package_lines(PLUGINS / plugin)
    assert lines <= LIMIT, f"plugins/{plugin}: {lines} lines of code, over the {LIMIT} of issue 23 item 5"
