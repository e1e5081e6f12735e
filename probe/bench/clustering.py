"""Clustering benchmark: unsupervised.kmeans against scikit-learn's k-means++ and faiss defaults, same run.

Bar (issue 5): on 200,000 x 128 float32 Gaussian blobs with k = 100, the objective is
within 1% of ``sklearn.cluster.KMeans(k, init="k-means++", n_init=1)`` and the time at
least 5x lower. The 1,000,000 x 256, k = 1,000 case is recorded too; scikit-learn runs
there in a child process under a time cap.

    python scripts/bench_clustering.py            # both cases (the large one takes minutes)
    python scripts/bench_clustering.py --quick    # 20,000 x 32, k = 20 smoke run
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

BAR_CASE = "200,000x128, k=100"


@dataclass
class Row:
    case: str
    method: str
    seconds: float | None
    objective: float | None
    ari: float | None
    note: str = ""


def blobs(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs as scikit-learn's ``make_blobs`` draws them (centres in [-10, 10], std 1), float32."""
    if n * d <= 50_000_000:
        from sklearn.datasets import make_blobs

        x, y = make_blobs(n_samples=n, n_features=d, centers=k, random_state=seed)
        return x.astype(np.float32), y
    rng = np.random.default_rng(seed)  # the large case, drawn in float32 to halve the memory
    centres = rng.uniform(-10, 10, size=(k, d)).astype(np.float32)
    y = rng.integers(0, k, size=n)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x += centres[y]
    return x, y


def _ari(y: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(y, labels))


def run_ours(x: np.ndarray, y: np.ndarray, k: int, case: str, seed: int = 0) -> Row:
    from unsupervised import kmeans

    start = time.perf_counter()
    result = kmeans(x, k, seed=seed)
    seconds = time.perf_counter() - start
    return Row(
        case,
        f"unsupervised.kmeans seed={seed}",
        seconds,
        result.objective,
        _ari(y, result.labels),
        f"{result.n_iter} assignment passes",
    )


def run_faiss_defaults(x: np.ndarray, y: np.ndarray, k: int, case: str) -> Row:
    import faiss

    start = time.perf_counter()
    model = faiss.Kmeans(x.shape[1], k, seed=1)
    model.train(x)
    distances, labels = model.index.search(x, 1)
    seconds = time.perf_counter() - start
    return Row(
        case,
        "faiss.Kmeans defaults",
        seconds,
        float(distances.sum(dtype=np.float64)),
        _ari(y, labels[:, 0]),
        "random init, 25 iterations, 256 points per centroid",
    )


_SKLEARN_CHILD = """
import json, sys, time
import numpy as np
from sklearn.cluster import KMeans
x = np.load(sys.argv[1]); k = int(sys.argv[2])
start = time.perf_counter()
model = KMeans(k, init="k-means++", n_init=1, random_state=0).fit(x)
print(json.dumps({"seconds": time.perf_counter() - start, "objective": float(model.inertia_),
                  "n_iter": int(model.n_iter_), "labels": sys.argv[3]}))
np.save(sys.argv[3], model.labels_)
"""


def run_sklearn(x: np.ndarray, y: np.ndarray, k: int, case: str, cap_minutes: float) -> Row:
    """scikit-learn in a child process, so a run past the cap can be stopped cleanly."""
    with tempfile.TemporaryDirectory(prefix="bench-clustering-") as tmp:
        data, labels = Path(tmp) / "x.npy", Path(tmp) / "labels.npy"
        np.save(data, x)
        try:
            done = subprocess.run(
                [sys.executable, "-c", _SKLEARN_CHILD, str(data), str(k), str(labels)],
                capture_output=True,
                text=True,
                timeout=cap_minutes * 60,
            )
        except subprocess.TimeoutExpired:
            return Row(
                case,
                "sklearn KMeans k-means++ n_init=1",
                None,
                None,
                None,
                f"not run to the end (cap {cap_minutes:g} min)",
            )
        if done.returncode != 0:
            raise RuntimeError(f"scikit-learn child failed: {done.stderr[-2000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        return Row(
            case,
            "sklearn KMeans k-means++ n_init=1",
            out["seconds"],
            out["objective"],
            _ari(y, np.load(labels)),
            f"{out['n_iter']} iterations",
        )


def best_of(repeat: int, run: Callable[[], Row]) -> Row:
    """The fastest of ``repeat`` runs (timeit's rule: slower runs measure other load, not the code)."""
    rows = [run() for _ in range(repeat)]
    timed = [(r.seconds, r) for r in rows if r.seconds is not None]
    if len(timed) < len(rows):
        return next(r for r in rows if r.seconds is None)
    fastest = min(timed, key=lambda pair: pair[0])[1]
    if repeat > 1:
        fastest.note += f"; best of {repeat}: " + ", ".join(f"{r.seconds:.2f}" for r in rows)
    return fastest


def run_case(n: int, d: int, k: int, cap_minutes: float, seeds: int, repeat: int) -> list[Row]:
    """scikit-learn, ours with seeds 0..seeds-1, faiss defaults, each the best of ``repeat``; printed as they finish."""
    case = f"{n:,}x{d}, k={k:,}"
    x, y = blobs(n, d, k, seed=0)
    rows = []
    runs: list[Callable[[], Row]] = [lambda: run_sklearn(x, y, k, case, cap_minutes)]
    runs += [functools.partial(run_ours, x, y, k, case, seed=s) for s in range(seeds)]
    runs += [lambda: run_faiss_defaults(x, y, k, case)]
    for run in runs:
        rows.append(best_of(repeat, run))
        print(_format(rows[-1]), flush=True)
    return rows


def _format(row: Row) -> str:
    seconds = f"{row.seconds:.2f}" if row.seconds is not None else "-"
    objective = f"{row.objective:.6g}" if row.objective is not None else "-"
    ari = f"{row.ari:.3f}" if row.ari is not None else "-"
    return f"| {row.case} | {row.method} | {seconds} | {objective} | {ari} | {row.note} |"


def _measured(row: Row) -> tuple[float, float]:
    """A finished row's seconds and objective; an error for a row that has neither (it did not finish)."""
    if row.seconds is None or row.objective is None:
        raise ValueError(f"{row.method} on {row.case} has no time or objective to compare ({row.note})")
    return row.seconds, row.objective


def verdict(rows: list[Row]) -> str:
    """The bar of issue 5: objective within 1% of scikit-learn's and time 5x lower, for every seed of ours."""
    reference, ours = rows[0], [r for r in rows if r.method.startswith("unsupervised")]
    if reference.seconds is None:
        return "bar not checked: scikit-learn did not finish"
    reference_seconds, reference_objective = _measured(reference)
    measured = [_measured(r) for r in ours]
    ratio = reference_seconds / max(seconds for seconds, _ in measured)
    gap = max(objective for _, objective in measured) / reference_objective - 1.0
    summary = (
        f"{rows[0].case}, worst of {len(ours)} seeds: {ratio:.1f}x faster than scikit-learn, "
        f"objective {gap:+.2%} vs scikit-learn"
    )
    if rows[0].case != BAR_CASE:
        return f"{summary} (the bar of 5x and +1% applies to {BAR_CASE})"
    return f"{'PASS' if ratio >= 5.0 and gap <= 0.01 else 'FAIL'}: {summary} (bar: 5x, +1%)"


def run(
    *,
    quick: bool = False,
    skip_large: bool = False,
    sklearn_cap_min: float = 20.0,
    seeds: int = 3,
    repeat: int = 3,
    json_path: str | None = None,
) -> int:
    """Ours, faiss's defaults and scikit-learn on synthetic blobs; print the rows and the bar's verdict.
    ``quick``: 20,000 x 32, k = 20 only; ``skip_large`` leaves out 1,000,000 x 256; the largest case runs once."""
    cases = [(20_000, 32, 20)] if quick else [(200_000, 128, 100)]
    if not quick and not skip_large:
        cases.append((1_000_000, 256, 1_000))
    print(f"threads: faiss {__import__('faiss').omp_get_max_threads()}, cpu count {os.cpu_count()}")
    print("| case | method | seconds | objective | ARI vs truth | note |\n|---|---|---|---|---|---|")
    results = []
    for n, d, k in cases:
        results.append(run_case(n, d, k, sklearn_cap_min, seeds, 1 if n >= 1_000_000 else repeat))
        print(verdict(results[-1]), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(r) for rows in results for r in rows], indent=2))
    return 0
