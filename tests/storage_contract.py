"""The behaviour every ClipStore backend must show. A backend's test class inherits
``StoreContract`` and provides two fixtures: ``store`` (a fresh, empty store) and
``store_env`` (environment variables that make ``open_store()`` open the same store in
another process)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from reelflow.errors import InputError
from storage import StorageError
from storage.lease import LeaseTimeout

HOLD_LEASE = """
import sys, time
from storage import open_store
with open_store().lease(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def filled_files(folder, stem: str, count: int, size: int) -> list:
    """``count`` files of ``size`` bytes, each filled with its own index: distinct, easy to tell apart."""
    paths = []
    for i in range(count):
        path = folder / f"{stem}{i}"
        path.write_bytes(bytes([i]) * size)
        paths.append(path)
    return paths


class _Fixtures:
    @pytest.fixture
    def store(self):
        raise NotImplementedError

    @pytest.fixture
    def store_env(self) -> dict[str, str]:
        raise NotImplementedError


class ObjectContract(_Fixtures):
    """Objects: round trip with metadata, list, delete, key safety, atomic publish."""

    def test_round_trip_with_metadata(self, store, tmp_path):
        src = tmp_path / "a.mp4"
        src.write_bytes(os.urandom(70_000))
        assert not store.exists("clips/a.mp4") and store.metadata("clips/a.mp4") == {}
        assert store.put_file("clips/a.mp4", src, {"project": "demo", "scene": "win", "frames": "36"}) == "clips/a.mp4"
        assert store.exists("clips/a.mp4")
        assert sha(store.fetch("clips/a.mp4", tmp_path / "dl")) == sha(src)
        assert store.metadata("clips/a.mp4") == {"project": "demo", "scene": "win", "frames": "36"}

    def test_list_and_delete(self, store, tmp_path):
        src = tmp_path / "x"
        src.write_bytes(b"x")
        for key in ("clips/1.mp4", "clips/2.mp4", "renders/p/r/final.mp4"):
            store.put_file(key, src)
        with store.lease("clips/3.mp4"):             # lease files are not objects
            assert store.list("clips") == ["clips/1.mp4", "clips/2.mp4"]
            assert store.list() == ["clips/1.mp4", "clips/2.mp4", "renders/p/r/final.mp4"]
        store.delete("clips/1.mp4")
        store.delete("clips/none.mp4")                # deleting nothing is fine
        assert store.list("clips") == ["clips/2.mp4"] and not store.exists("clips/1.mp4")

    def test_a_missing_object_is_a_storage_error(self, store, tmp_path):
        with pytest.raises(StorageError):
            store.fetch("clips/none.mp4", tmp_path)

    @pytest.mark.parametrize("key", ["../x", "/abs", "a/../../b", "", "dir/"])
    def test_unsafe_keys_are_bad_input(self, store, tmp_path, key):
        src = tmp_path / "x"
        src.write_bytes(b"x")
        with pytest.raises(InputError):
            store.put_file(key, src)

    # -- atomic publish -----------------------------------------------------------------------

    def test_a_failed_publish_leaves_nothing_under_the_key(self, store, tmp_path):
        with pytest.raises((StorageError, OSError)):
            store.put_file("clips/new.mp4", tmp_path / "missing")
        assert not store.exists("clips/new.mp4") and store.list() == []
        old = tmp_path / "old"
        old.write_bytes(b"old")
        store.put_file("clips/a.mp4", old)
        with pytest.raises((StorageError, OSError)):
            store.put_file("clips/a.mp4", tmp_path / "missing")
        assert store.fetch("clips/a.mp4", tmp_path / "dl").read_bytes() == b"old"
        assert store.list() == ["clips/a.mp4"]

    def test_a_reader_never_sees_a_partial_object(self, store, tmp_path):
        versions = filled_files(tmp_path, "v", 3, 3_000_000)
        expected = {sha(p) for p in versions}
        seen: list[str] = []
        stop = threading.Event()

        def read() -> None:
            n = 0
            while not stop.is_set():
                if store.exists("renders/p/final.mp4"):
                    n += 1
                    seen.append(sha(store.fetch("renders/p/final.mp4", tmp_path / f"r{n}")))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for path in versions * 2:
                store.put_file("renders/p/final.mp4", path)
        finally:
            stop.set()
            reader.join()
        assert seen and set(seen) <= expected


    def test_writers_of_one_key_at_once_all_succeed(self, store, tmp_path):
        """Two renders may normalise the same clip at once: each publish succeeds, one wins whole."""
        sources = filled_files(tmp_path, "w", 4, 200_000)
        errors: list[BaseException] = []
        start = threading.Barrier(len(sources))

        def write(path) -> None:
            start.wait()
            try:
                for _ in range(3):
                    store.put_file("normalized/p/x.mov", path, {"scene": "s", "frames": "12"})
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(p,)) for p in sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sha(store.fetch("normalized/p/x.mov", tmp_path / "dl")) in {sha(p) for p in sources}
        assert store.metadata("normalized/p/x.mov") == {"scene": "s", "frames": "12"}


class LeaseContract(_Fixtures):
    """Per-key leases: one holder, waiters get it next, a killed holder's lease is taken over."""

    def test_a_lease_has_one_holder_and_the_next_waits_for_it(self, store):
        order: list[str] = []
        with store.lease("clips/a.mp4"):
            with pytest.raises(LeaseTimeout):
                with store.lease("clips/a.mp4", wait=0.5):
                    pass
            with store.lease("clips/b.mp4", wait=0.5):      # other keys are free
                order.append("b")

            def second() -> None:
                with store.lease("clips/a.mp4", wait=30):
                    order.append("second")

            waiter = threading.Thread(target=second)
            waiter.start()
            time.sleep(1.0)
            order.append("first done")
        waiter.join(timeout=30)
        assert order == ["b", "first done", "second"]

    def test_a_lease_is_exclusive_among_many_threads(self, store):
        inside, most, lock = [0], [0], threading.Lock()

        def work() -> None:
            with store.lease("clips/hot.mp4", wait=60):
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.05)
                with lock:
                    inside[0] -= 1

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert most[0] == 1 and not any(t.is_alive() for t in threads)

    def test_the_lease_of_a_killed_process_is_taken_over(self, store, store_env):
        env = {**os.environ, **store_env, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, "clips/k.mp4"], env=env,
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert proc.stdout.readline().strip() == "held"
            with pytest.raises(LeaseTimeout):
                with store.lease("clips/k.mp4", wait=0.5):
                    pass
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        started = time.monotonic()
        with store.lease("clips/k.mp4", wait=10):
            assert time.monotonic() - started < 10


class StoreContract(ObjectContract, LeaseContract):
    """Everything a ClipStore backend must do."""
