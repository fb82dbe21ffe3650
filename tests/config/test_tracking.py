"""Tracking settings: the SQLite store lock that lets torchrun's ranks start together."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aidetector.config.tracking import sqlite_store_lock


def test_sqlite_store_lock_serialises_processes_of_one_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    entered = threading.Event()
    with sqlite_store_lock(uri):
        other = threading.Thread(target=lambda: _enter(uri, entered))
        other.start()
        assert not entered.wait(0.5), "a second holder got in while the store was locked"
    other.join(timeout=10)
    assert entered.is_set()


@pytest.mark.parametrize("other", ["sqlite:///{tmp}/b.db", "http://127.0.0.1:5000"])
def test_other_stores_and_servers_are_not_blocked(tmp_path: Path, other: str) -> None:
    entered = threading.Event()
    with sqlite_store_lock(f"sqlite:///{tmp_path}/a.db"):
        thread = threading.Thread(target=lambda: _enter(other.format(tmp=tmp_path), entered))
        thread.start()
        assert entered.wait(5)
    thread.join(timeout=10)


def _enter(uri: str, entered: threading.Event) -> None:
    with sqlite_store_lock(uri):
        entered.set()
