"""Without its framework, each integration says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
sys.modules[{blocked!r}] = None  # as if the package were not installed
from zeroshot_vision._errors import MissingDependencyError
try:
    {action}
except MissingDependencyError as error:
    print(error)
"""


@pytest.mark.parametrize(
    ("blocked", "action", "extra"),
    [
        ("langchain_core", "import zeroshot_vision.integrations.langchain", "langchain"),
        ("llama_index", "import zeroshot_vision.integrations.llama_index", "llama-index"),
        (
            "datasets",
            "from zeroshot_vision.integrations.hf_datasets import to_dataset; to_dataset('x')",
            "datasets",
        ),
    ],
)
def test_a_missing_framework_names_its_extra(blocked: str, action: str, extra: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK.format(blocked=blocked, action=action)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f'pip install "zeroshot-vision[{extra}]"' in done.stdout


def test_importing_the_package_imports_no_framework() -> None:
    code = (
        "import sys, zeroshot_vision.integrations, zeroshot_vision.integrations.hf_datasets;"
        "print([m for m in ('langchain_core', 'llama_index', 'datasets') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
