"""Indexing on a Ray cluster: a real local cluster (a head and one worker node on this
machine, one CPU each) embeds a generated library with the same vectors as the local
pipeline, survives losing its worker node mid-run, resumes after a cancelled (or killed)
driver without storing anything twice, and refuses paths its nodes cannot read.

The mfcc space keeps the models fast; the mechanics are the same for every space.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from engine.catalog.vectors import VectorStore
from engine.embed.cluster import PathMap, parse_cluster, windows_from_blob
from engine.errors import ClusterUnusable, LibraryError
from engine.library import Library
from tests.audio_factory import noise, tone, write
from tests.conftest import ROOT
from tests.requires import requires

pytestmark = [requires("ray"), pytest.mark.slow]

FILES = 40


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, small enough for a CI machine."""
    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    worker = cluster.add_node(**node)
    cluster.wait_for_nodes()
    yield cluster, worker
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def make_sounds(root, count=FILES):
    rng = np.random.default_rng(3)
    for i in range(count):
        if i % 2:
            write(root / f"tone_{i:03d}.wav", tone(0.3 + 0.05 * i, freq=200 + 30 * i), 16000)
        else:
            write(root / f"noise_{i:03d}.wav", noise(0.4 + rng.uniform(0, 0.5)), 16000)
    return root


def scanned(tmp_path, name, sounds):
    lib = Library(tmp_path / name)
    lib.add_folders([sounds])
    lib.scan(workers=1)
    return lib


def vectors_of(lib, space_name):
    store = VectorStore(lib.catalog)
    space = store.space(space_name)["id"]
    by_name = {}
    for file_id, name in lib.catalog.conn.execute("SELECT id, name FROM files"):
        windows = store.windows(space, file_id)
        by_name[name] = (store.file_vector(space, file_id), windows.starts, windows.vectors)
    return by_name


def assert_each_file_stored_once(lib):
    rows = lib.catalog.conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT file_id) FROM file_vectors"
    ).fetchone()
    assert rows == (FILES, FILES)


def test_cluster_spec_and_path_map_parse():
    assert parse_cluster("ray") is None
    assert parse_cluster("ray:10.0.0.5:6379") == "10.0.0.5:6379"
    with pytest.raises(LibraryError, match="ray or ray:ADDRESS"):
        parse_cluster("dask")
    paths = PathMap.parse(["/Volumes/SFX=/mnt/sfx", "/Volumes/SFX/Foley=/mnt/foley"])
    assert paths.to_worker("/Volumes/SFX/Foley/a.wav") == "/mnt/foley/a.wav"
    assert paths.to_worker("/Volumes/SFX/b.wav") == "/mnt/sfx/b.wav"
    assert paths.to_worker("/Volumes/SFXtra/c.wav") == "/Volumes/SFXtra/c.wav"
    with pytest.raises(LibraryError, match="LOCAL=WORKER"):
        PathMap.parse(["/Volumes/SFX"])
    with pytest.raises(ValueError):
        windows_from_blob(b"\x01" * 40)


def test_the_cluster_embeds_what_the_local_pipeline_does(tmp_path, cluster):
    head, _ = cluster
    sounds = make_sounds(tmp_path / "sfx")
    local = scanned(tmp_path, "local", sounds)
    remote = scanned(tmp_path, "remote", sounds)
    try:
        local.embed(("aisfx", "mfcc"), device="cpu")
        seen = []
        report = remote.embed(("aisfx", "mfcc"), device="cpu", cluster=f"ray:{head.address}",
                              progress=seen.append)  # fmt: skip
        assert report.files == FILES and report.failed == 0
        assert seen and seen[-1].files_done == FILES
        for space in ("aisfx", "mfcc"):
            ours, theirs = vectors_of(local, space), vectors_of(remote, space)
            assert ours.keys() == theirs.keys() and len(ours) == FILES
            for name, (vector, starts, windows) in ours.items():
                other = theirs[name]
                assert np.allclose(vector, other[0], atol=2e-3), (space, name)  # float16
                np.testing.assert_allclose(starts, other[1])
                assert np.allclose(windows, other[2], atol=2e-3), (space, name)
        assert len(vectors_of(remote, "aisfx")["tone_021.wav"][1]) > 1  # windows came back
        # Nothing left to do, nothing stored twice.
        again = remote.embed(("aisfx", "mfcc"), device="cpu", cluster=f"ray:{head.address}")
        assert again.files == 0
        (count,) = remote.catalog.conn.execute("SELECT COUNT(*) FROM file_vectors").fetchone()
        assert count == 2 * FILES
    finally:
        local.close()
        remote.close()


def test_a_path_the_workers_cannot_read_is_refused_before_anything_starts(tmp_path, cluster):
    head, _ = cluster
    lib = scanned(tmp_path, "lib", make_sounds(tmp_path / "sfx", 4))
    try:
        with pytest.raises(ClusterUnusable, match="cannot read /nowhere/sfx/.*--path-map"):
            lib.embed(("mfcc",), device="cpu", cluster=f"ray:{head.address}",
                      path_map=(f"{tmp_path / 'sfx'}=/nowhere/sfx",))  # fmt: skip
        assert lib.catalog.conn.execute("SELECT COUNT(*) FROM file_vectors").fetchone()[0] == 0
        assert lib.catalog.conn.execute("SELECT COUNT(*) FROM embed_errors").fetchone()[0] == 0
        # Mapped to where the files are, the same library indexes.
        moved = tmp_path / "elsewhere"
        (tmp_path / "sfx").rename(moved)
        try:
            report = lib.embed(("mfcc",), device="cpu", cluster=f"ray:{head.address}",
                               path_map=(f"{tmp_path / 'sfx'}={moved}",))  # fmt: skip
        finally:
            moved.rename(tmp_path / "sfx")
        assert report.files == 4
    finally:
        lib.close()


def test_a_cancelled_driver_resumes_without_storing_twice(tmp_path, cluster):
    import threading

    head, _ = cluster
    lib = scanned(tmp_path, "lib", make_sounds(tmp_path / "sfx"))
    try:
        cancel = threading.Event()
        first = lib.embed(("mfcc",), device="cpu", cluster=f"ray:{head.address}",
                          cancel=cancel, progress=lambda p: cancel.set())  # fmt: skip
        assert first.cancelled and 0 < first.files < FILES
        second = lib.embed(("mfcc",), device="cpu", cluster=f"ray:{head.address}")
        assert first.files + second.files == FILES
        assert_each_file_stored_once(lib)
    finally:
        lib.close()


KILLED_FILES = 160


def test_the_cli_indexes_through_the_cluster_and_a_killed_driver_resumes(tmp_path, cluster):
    """`add --cluster`: a driver killed mid-run (SIGKILL) leaves stored files stored; the
    next `scan --cluster` embeds the rest, and no file has two vectors."""
    head, _ = cluster
    sounds = make_sounds(tmp_path / "sfx", KILLED_FILES)
    env = {**os.environ, "SONARIUM_LIBRARY": str(tmp_path / "lib"), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "main.py")]
    added = subprocess.run(
        [*command, "add", str(sounds), "--cluster", f"ray:{head.address}", "--no-embed"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with Library(tmp_path / "lib") as lib:
        assert lib.catalog.conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == KILLED_FILES
    run = subprocess.Popen(
        [*command, "scan", "--cluster", f"ray:{head.address}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    with Library(tmp_path / "lib") as lib:
        count = "SELECT COUNT(*) FROM file_vectors"
        # Until the first files are stored, then kill the driver: looked at often, with
        # enough files that the rest cannot all be stored in between (48 once were).
        for _ in range(15000):
            if lib.catalog.conn.execute(count).fetchone()[0] > 0 or run.poll() is not None:
                break
            time.sleep(0.02)
        run.kill()
        run.wait(timeout=60)
        stored = lib.catalog.conn.execute(count).fetchone()[0]
    finished = subprocess.run(
        [*command, "scan", "--cluster", f"ray:{head.address}"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    with Library(tmp_path / "lib") as lib:
        spaces = lib.catalog.conn.execute("SELECT COUNT(*) FROM spaces").fetchone()[0]
        vectors = lib.catalog.conn.execute("SELECT COUNT(*) FROM file_vectors").fetchone()[0]
        windows = lib.catalog.conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT space_id || ':' || file_id || ':' || start) "
            "FROM window_vectors"
        ).fetchone()
    assert spaces >= 2 and vectors == KILLED_FILES * spaces  # every file in every space, once
    assert windows[0] == windows[1] > 0  # no window stored twice
    assert 0 < stored < vectors  # the driver was killed half way


def test_losing_the_worker_node_mid_run_loses_no_file(tmp_path, cluster):
    """Last in this module: it removes the worker node (the head goes on alone)."""
    head, worker = cluster
    lib = scanned(tmp_path, "lib", make_sounds(tmp_path / "sfx"))
    try:
        lost = []

        def kill_worker(progress):
            if not lost:
                head.remove_node(worker, allow_graceful=False)
                lost.append(progress.files_done)

        report = lib.embed(("mfcc",), device="cpu", cluster=f"ray:{head.address}",
                           progress=kill_worker)  # fmt: skip
        assert lost and lost[0] < FILES
        assert report.files == FILES and report.failed == 0
        assert_each_file_stored_once(lib)
    finally:
        lib.close()


def test_nothing_of_ray_is_imported_without_a_cluster(tmp_path):
    sounds = make_sounds(tmp_path / "sfx", 3)
    script = (
        "import sys\n"
        "from engine.library import Library\n"
        f"lib = Library({str(tmp_path / 'lib')!r})\n"
        f"lib.index([{str(sounds)!r}], spaces=('mfcc',), device='cpu')\n"
        "assert lib.catalog.conn.execute('SELECT COUNT(*) FROM file_vectors').fetchone()[0] == 3\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
