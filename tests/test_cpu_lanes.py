"""CPU model lanes: even splits, per-lane torch thread counts, the default restored."""

from __future__ import annotations

import threading

import pytest
import torch

from engine.models.cpu_lanes import CpuLanes, lane_count, split_even


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 21])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_split_even_keeps_order_and_balances(n, parts):
    items = list(range(n))
    runs = split_even(items, parts)
    assert [x for run in runs for x in run] == items
    assert len(runs) == max(1, min(parts, n))
    sizes = [len(run) for run in runs]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the longer runs first


def test_split_even_of_a_range_gives_ranges():
    assert split_even(range(5), 2) == [range(0, 3), range(3, 5)]


def test_lane_count_only_splits_a_multicore_cpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert lane_count("cuda:0") == 1 and lane_count("mps") == 1
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert lane_count("cpu") == 1
        torch.set_num_threads(2)
        assert lane_count("cpu") == 2
        monkeypatch.setattr("os.cpu_count", lambda: 1)
        assert lane_count("cpu") == 1
    finally:
        torch.set_num_threads(previous)


def _threads_in_a_new_thread() -> int:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_lanes_run_side_by_side_with_their_share_of_threads():
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        lanes = CpuLanes(2)
        try:
            assert (lanes.lanes, lanes.threads_each) == (2, 2)
            # This thread, and threads started from now on, keep the default of 4.
            assert torch.get_num_threads() == 4
            assert _threads_in_a_new_thread() == 4
            both = threading.Barrier(2, timeout=30)

            def probe(part: list[int]) -> tuple[str, int, list[int]]:
                both.wait()  # returns only if the two parts run at the same time
                return threading.current_thread().name, torch.get_num_threads(), part

            out = lanes.map(probe, [[0, 1], [2]])
            assert [part for _, _, part in out] == [[0, 1], [2]]  # results in order
            assert len({name for name, _, _ in out}) == 2
            assert all(name.startswith("sonarium-lane") for name, _, _ in out)
            assert [threads for _, threads, _ in out] == [2, 2]
            # The lanes keep their share across calls.
            again = lanes.map(lambda _: torch.get_num_threads(), [0, 1])
            assert again == [2, 2]
        finally:
            lanes.close()
    finally:
        torch.set_num_threads(previous)
