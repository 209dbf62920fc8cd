"""The one way the studies run their tasks: serially, in local worker processes (joblib) or on a Dask
cluster, with every finished run appended to a ``records.jsonl`` so that an interrupted study resumes.

A task is a frozen dataclass with a ``key`` (a digest of everything that defines the run) and ``fn(task,
shared)`` is a module-level function returning the run's JSON-able record. ``shared`` holds what every run
reads (the user's data sets): it goes to each worker process once per task through joblib, and to a Dask
cluster once (scattered to every worker). A run depends on its task and ``shared`` only, so the records are
the same whichever runs them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

CONNECT_SECONDS = 10  # how long to wait for a Dask scheduler before saying it cannot be reached


def read_records(path: Path) -> dict:
    """{key: record} of a ``records.jsonl``; a line cut by an interruption is skipped."""
    out: dict = {}
    if path.exists():
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                out[rec["key"]] = rec
    return out


def execute(tasks: Sequence[Any], fn: Callable[[Any, Any], dict], n_jobs: Optional[int] = 1, scheduler: Any = None,
            on_result: Optional[Callable[[dict], None]] = None, shared: Any = None) -> list:
    """Run ``fn(task, shared)`` for every task: serially, through joblib (``n_jobs`` processes, one engine
    thread each) or on a Dask cluster (``scheduler``: a ``dask.distributed.Client`` or an address). Calls
    ``on_result`` in this process as each run finishes; returns the records in the order of ``tasks``."""
    results: dict = {}

    def done(rec: dict) -> None:
        results[rec["key"]] = rec
        if on_result is not None:
            on_result(rec)

    tasks = list(tasks)
    if not tasks:
        return []
    if scheduler is not None:
        from dask.distributed import Client, as_completed

        if isinstance(scheduler, Client):
            client = scheduler
        else:
            try:
                client = Client(scheduler, timeout=CONNECT_SECONDS)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"scheduler: cannot reach a Dask scheduler at {scheduler!r} within "
                                 f"{CONNECT_SECONDS} s ({type(exc).__name__}: {exc})") from None
        try:
            common = client.scatter(shared, broadcast=True) if shared is not None else None
            futures = client.map(fn, tasks, shared=common, pure=False)
            for fut in as_completed(futures):
                done(fut.result())
        finally:
            if client is not scheduler:
                client.close()
    elif n_jobs is None or n_jobs == 1:
        for t in tasks:
            done(fn(t, shared))
    else:
        from joblib import Parallel, delayed, parallel_config

        with parallel_config(backend="loky", inner_max_num_threads=1):
            for rec in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(delayed(fn)(t, shared) for t in tasks):
                done(rec)
    return [results[t.key] for t in tasks]


def run_resumable(tasks: Sequence[Any], fn: Callable[[Any, Any], dict], out: Path, *, n_jobs: Optional[int] = 1,
                  scheduler: Any = None, resume: bool = True, shared: Any = None,
                  on_result: Optional[Callable[[dict, int], None]] = None, records: str = "records.jsonl") -> list:
    """:func:`execute` the tasks not yet in ``out/<records>`` (all of them with ``resume=False``, which starts
    the file over), appending each record as it finishes; returns every task's record in order.
    ``on_result(record, n_done)`` reports progress."""
    rec_path = Path(out) / records
    known = read_records(rec_path) if resume else {}
    if not resume and rec_path.exists():
        rec_path.unlink()
    todo = [t for t in tasks if t.key not in known]
    n_done = len(tasks) - len(todo)
    with open(rec_path, "a") as fh:
        def record(rec: dict) -> None:
            nonlocal n_done
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            known[rec["key"]] = rec
            n_done += 1
            if on_result is not None:
                on_result(rec, n_done)

        execute(todo, fn, n_jobs=n_jobs, scheduler=scheduler, on_result=record, shared=shared)
    return [known[t.key] for t in tasks]
