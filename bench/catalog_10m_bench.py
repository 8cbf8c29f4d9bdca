"""SQLite at 10 million file rows: build time, size and the queries a page needs.

    python bench/catalog_10m_bench.py [--rows 10000000] [--keep DIR]

Prints one JSON object. A synthetic catalog (the product's own schema and migrations:
engine.catalog.db.Catalog) gets --rows file rows (names and folders like
bench/scale_bench.py's, no vectors, no FTS) inserted in transactions of 50,000, then times
the queries that do not grow with the library: a page of a filter-only listing in name
order (files_name_order), a page deep in it, reading 2,000 rows by id, and a count.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scale_bench import RATES, file_names  # noqa: E402
from engine.catalog.db import FILE_COLUMNS, ID_SET, Catalog, id_set  # noqa: E402
from engine.search.keyword import keyword_search  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="sonarium-10m-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        catalog = Catalog(folder / "catalog.sqlite")
        result: dict = {"rows": args.rows}
        have = catalog.conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        if have != args.rows:
            root = str(folder / "sounds")
            root_id = catalog.add_root(root)
            rng = np.random.default_rng(0)
            cols = ", ".join(FILE_COLUMNS)
            marks = ", ".join("?" for _ in FILE_COLUMNS)
            began = time.perf_counter()
            names = file_names(args.rows, 0)
            done = 0
            while done < args.rows:
                n = min(50_000, args.rows - done)
                durations = rng.choice([0.4, 1.2, 2.5, 6.0, 30.0, 120.0], size=n)
                rows = []
                for i in range(n):
                    sub, name, _ = next(names)
                    record = dict.fromkeys(FILE_COLUMNS)
                    record.update(
                        root_id=root_id, path=f"{root}/{sub}/{name}", folder=f"{root}/{sub}",
                        name=name, size=1, mtime_ns=done + i, status="ok", scanned_at=0.0,
                        duration=float(durations[i]), sample_rate=RATES[(done + i) % 4],
                        channels=1, format="WAV",
                    )  # fmt: skip
                    rows.append([record[k] for k in FILE_COLUMNS])
                with catalog.transaction() as c:
                    c.executemany(f"INSERT INTO files ({cols}) VALUES ({marks})", rows)
                done += n
            result["insert_s"] = round(time.perf_counter() - began, 1)
        result["catalog_mb"] = round((folder / "catalog.sqlite").stat().st_size / 1e6, 1)

        def timed(fn, repeats=7):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return round(1000 * statistics.median(times), 1)

        result["filter_page_ms"] = timed(lambda: keyword_search(catalog, "dur:<2 sr:48k", 200))
        result["filter_page_at_100k_ms"] = timed(
            lambda: keyword_search(catalog, "dur:<2 sr:48k", 200, offset=100_000), 3
        )
        ids = np.random.default_rng(1).integers(1, args.rows + 1, size=2000).tolist()
        result["read_2000_rows_by_id_ms"] = timed(
            lambda: catalog.conn.execute(
                f"SELECT id, name, duration FROM files WHERE id IN ({ID_SET})", (id_set(ids),)
            ).fetchall()
        )
        result["count_ms"] = timed(
            lambda: catalog.conn.execute("SELECT COUNT(*) FROM files").fetchone(), 3
        )
        catalog.close()
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
