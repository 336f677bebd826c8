"""A sweep over FAISS graph indexes on `benchmarks/search.py`'s synthetic vectors, to find what fits in
a RAM budget per video: HNSW over 8-bit codes (optionally after a PCA) or float32 vectors, its links per vector (M) and
build breadth (efConstruction), against exact search, one query at a time on one thread.

For each efSearch and re-ranking depth it prints one JSON line: recall@10 against exact float32 search
on 300 text-like queries, p50 latency, and the speed-up over exact search's p50 measured in the same
run. Re-ranking scores the candidates again exactly with the float16 vectors held in memory (tclib
reads them from its shards instead, see tclib.search.vectors).

    .venv/bin/python benchmarks/ann_frontier.py --m 32 --ef-construction 40
    .venv/bin/python benchmarks/ann_frontier.py --m 48 --ef-construction 64
    .venv/bin/python benchmarks/ann_frontier.py --m 32 --ef-construction 64 --pca 256 --rerank 30 60 100
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np
from search import DIM, collection


def exact_baseline(x: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float]:
    """The exact top 10 of each query, and exact search's p50 (ms) over 15 single queries."""
    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    _, truth = flat.search(queries, 10)
    times = []
    for q in queries[:15]:
        started = time.perf_counter()
        flat.search(q[None], 10)
        times.append(time.perf_counter() - started)
    return truth, 1000 * float(np.median(times))


def graph_index(dim: int, m: int, ef_construction: int, pca: int, codes: str):
    """(the index to build, its HNSW graph): HNSW over 8-bit codes (or float32 vectors), after a PCA to
    `pca` dims when given."""
    inner = (faiss.IndexHNSWFlat(pca or dim, m, faiss.METRIC_INNER_PRODUCT) if codes == "flat" else
             faiss.IndexHNSWSQ(pca or dim, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT))
    inner.hnsw.efConstruction = ef_construction
    return (faiss.IndexPreTransform(faiss.PCAMatrix(dim, pca), inner) if pca else inner), inner.hnsw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1_000_000)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--pca", type=int, default=0, help="reduce to this many dims first (0: none)")
    parser.add_argument("--codes", choices=("sq8", "flat"), default="sq8", help="8-bit codes or float32 vectors")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 48, 64, 96, 128])
    parser.add_argument("--rerank", type=int, nargs="+", default=[0, 30])
    args = parser.parse_args()
    n = args.videos
    rows, make_queries = collection(n)
    x = np.concatenate([rows(a, min(n, a + 65536)) for a in range(0, n, 65536)])
    queries = make_queries(300)
    truth, exact_ms = exact_baseline(x, queries)
    stored = x.astype(np.float16)
    index, hnsw = graph_index(DIM, args.m, args.ef_construction, args.pca, args.codes)
    started = time.perf_counter()
    index.train(x[np.random.default_rng(0).choice(n, min(n, 100_000), replace=False)])
    index.add(x)
    built = time.perf_counter() - started
    del x
    ram = len(faiss.serialize_index(index)) / n
    faiss.omp_set_num_threads(1)
    for ef in args.ef_search:
        hnsw.efSearch = ef
        for rerank in args.rerank:
            found, times = [], []
            for q in queries:
                started = time.perf_counter()
                _, candidates = index.search(q[None], max(10, rerank))
                candidates = candidates[0][candidates[0] >= 0]
                if rerank:
                    candidates = candidates[np.argsort(-(stored[candidates].astype(np.float32) @ q))[:10]]
                times.append(time.perf_counter() - started)
                found.append(candidates[:10])
            p50 = 1000 * float(np.median(times))
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))
            print(json.dumps({"codes": args.codes, "m": args.m, "ef_construction": args.ef_construction, "pca": args.pca,
                              "build_s": round(built), "ram_per_video": round(ram), "ef_search": ef,
                              "rerank": rerank, "recall_at_10": round(recall, 4), "p50_ms": round(p50, 3),
                              "exact_p50_ms": round(exact_ms, 1), "speedup": round(exact_ms / p50, 1)}), flush=True)


if __name__ == "__main__":
    main()
