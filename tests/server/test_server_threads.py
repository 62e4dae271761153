"""``zsv serve`` makes torch's idle CPU threads sleep (OMP_WAIT_POLICY), unless told."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_CHILD = """
import os, sys
from zeroshot_vision._cli import serve  # what zsv serve imports before it serves
from zeroshot_vision.server import _run
assert "torch" not in sys.modules, "the server's modules imported torch too early"
changed = _run.passive_openmp_threads()
import torch  # OpenMP reads the policy here
print(changed, os.environ.get("OMP_WAIT_POLICY"), _run.passive_openmp_threads())
"""


def _child(environment: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.fixture()
def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}


def test_the_server_sets_a_passive_policy_before_torch_is_imported(
    environment: dict[str, str],
) -> None:
    # Set once, before torch; a second call (torch imported, variable set) changes nothing.
    assert _child(environment) == ["True", "PASSIVE", "False"]


def test_a_policy_the_user_chose_is_kept(environment: dict[str, str]) -> None:
    assert _child({**environment, "OMP_WAIT_POLICY": "ACTIVE"}) == ["False", "ACTIVE", "False"]


def test_nothing_is_set_once_torch_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from zeroshot_vision.server import _run

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "torch" in sys.modules
    assert _run.passive_openmp_threads() is False
    assert "OMP_WAIT_POLICY" not in os.environ
