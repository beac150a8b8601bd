from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.erasure.tiny_sd import save_tiny_pipeline, tiny_pipeline


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_pipe() -> Any:
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def tiny_pipe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd", seed=0)
