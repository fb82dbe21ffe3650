"""Tracking settings: the SQLite store lock that lets torchrun's ranks start together."""

from __future__ import annotations

import threading
from pathlib import Path

from aidetector.tracking import sqlite_store_lock


def test_sqlite_store_lock_serialises_processes_of_one_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    entered = threading.Event()
    with sqlite_store_lock(uri):
        other = threading.Thread(target=lambda: _enter(uri, entered))
        other.start()
        assert not entered.wait(0.5), "a second holder got in while the store was locked"
    other.join(timeout=10)
    assert entered.is_set()


def test_other_stores_and_servers_are_not_blocked(tmp_path: Path) -> None:
    with (
        sqlite_store_lock(f"sqlite:///{tmp_path}/a.db"),
        sqlite_store_lock(f"sqlite:///{tmp_path}/b.db"),
        sqlite_store_lock("http://127.0.0.1:5000"),
    ):
        pass  # a timeout or deadlock would fail the test


def _enter(uri: str, entered: threading.Event) -> None:
    with sqlite_store_lock(uri):
        entered.set()
