"""The FAISS index over an index folder's vectors (inner product of L2-normalized vectors: cosine).

Chosen by the collection's size as autofaiss chooses (or named): up to EXACT_UP_TO vectors an exact
`IndexFlatIP`; above, IVF-PQ (`IndexIVFPQ`: nlist ≈ 4·sqrt(N) lists, PQ codes of dim/8 bytes) whose
`rerank` best candidates are scored again exactly with the float16 vectors read from the shards on
disk, so that memory holds the codes only (about dim/8 + 8 bytes per vector). Both are built from the
shards a batch at a time. The build reports the approximate index's recall@10 against exact search
on held-out queries: the text vectors of captions given to the build, else stored vectors that did
not train the quantizers (each not counted among its own neighbours). nprobe is tuned to reach
recall@10 RECALL_TARGET on them, as autofaiss tunes its search parameters.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ParamsError
from .store import FAISS, ShardVectors

log = logging.getLogger(__name__)

EXACT_UP_TO = 100_000
RECALL_TARGET = 0.95  # recall@10 against exact search that the approximate index is tuned to
KINDS = ("auto", "exact", "ivfpq")


@dataclass(frozen=True)
class IndexChoice:
    kind: str  # "exact" or "ivfpq"
    nlist: int = 0
    pq_bytes: int = 0
    nprobe: int = 0
    rerank: int = 0

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact inner product (IndexFlatIP)"
        return (f"IVF{self.nlist},PQ{self.pq_bytes} (nprobe {self.nprobe}), exact re-ranking of the best "
                f"{self.rerank}")


def _faiss():
    """The faiss module, imported quietly (its loader logs every CPU extension it tries at INFO)."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss as module

    return module


def choose(n: int, dim: int, kind: str = "auto") -> IndexChoice:
    """The index for `n` vectors of `dim`: exact up to EXACT_UP_TO (or when named), IVF-PQ above."""
    if kind not in KINDS:
        raise ParamsError(f"index kind must be one of {KINDS}, got {kind!r}")
    if kind == "exact" or (kind == "auto" and n <= EXACT_UP_TO):
        return IndexChoice("exact")
    nlist = max(16, min(65536, 2 ** round(math.log2(4 * math.sqrt(n)))))
    pq_bytes = max(8, dim // 8) if dim % max(8, dim // 8) == 0 else 8
    return IndexChoice("ivfpq", nlist=nlist, pq_bytes=pq_bytes, nprobe=max(8, nlist // 128), rerank=100)


def build(out: Path, units: pd.DataFrame, dim: int, choice: IndexChoice, seed: int = 0,
          queries: np.ndarray | None = None) -> dict:
    """Build and save the index of `units` (the order of units.csv); returns what the manifest records.
    The approximate index's nprobe is tuned on `queries` (vectors of queries like the ones to come:
    text vectors of captions), else on held-out stored vectors."""
    faiss = _faiss()

    started = time.perf_counter()
    stored = ShardVectors(out, units)
    if choice.kind == "exact":
        index = faiss.IndexFlatIP(dim)
    else:
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, choice.nlist, choice.pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        train_rows, held_out = _samples(len(units), max(40 * choice.nlist, 50_000), seed)
        index.train(stored.take(train_rows))
    for vectors in stored.batches():
        index.add(vectors)
    faiss.write_index(index, str(out / f"{FAISS}.tmp"))
    (out / f"{FAISS}.tmp").replace(out / FAISS)
    if choice.kind != "exact":
        tuning = (stored.take(held_out), held_out) if queries is None else (queries, None)
        choice, recall = tune(stored, index, choice, *tuning)
    record = {**asdict(choice), "built_seconds": round(time.perf_counter() - started, 1)}
    if choice.kind != "exact":
        record["recall_at_10"] = recall
        record["tuned_on"] = "held-out stored vectors" if queries is None else f"{len(queries)} queries"
        log.info("%s: %s, recall@10 %.3f against exact search on %s", out, choice.describe(), recall,
                 record["tuned_on"])
    return record


def tune(stored: ShardVectors, index, choice: IndexChoice, queries: np.ndarray, own: np.ndarray | None,
         target: float = RECALL_TARGET) -> tuple[IndexChoice, float]:
    """The smallest nprobe (from the choice's, in steps of about 1.4x) whose recall@10 reaches `target`,
    as autofaiss tunes its search parameters; at most a quarter of the lists are probed."""
    while True:
        index.nprobe = choice.nprobe
        recall = recall_at_10(stored, index, choice, queries, own)
        following = max(choice.nprobe + 1, round(choice.nprobe * 1.41))
        if recall >= target or following > choice.nlist // 4:
            return choice, recall
        choice = replace(choice, nprobe=following)


def _samples(n: int, train: int, seed: int, queries: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Rows that train the quantizers, and held-out rows that query the recall (sorted, disjoint)."""
    order = np.random.default_rng(seed).permutation(n)
    held_out = np.sort(order[:min(queries, n // 10)])
    return np.sort(order[len(held_out):len(held_out) + train]), held_out


def search(stored: ShardVectors, index, choice: IndexChoice, queries: np.ndarray, k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best units for each query (rows of float32 vectors), best first."""
    k = min(k, len(stored))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if choice.kind == "exact":
        return index.search(queries, k)
    _, candidates = index.search(queries, max(k, choice.rerank))
    scores, ids = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    for i, row in enumerate(candidates):
        row = row[row >= 0]
        exact = stored.take(row) @ queries[i]
        best = np.argsort(-exact, kind="stable")[:k]
        scores[i, :len(best)], ids[i, :len(best)] = exact[best], row[best]
    return scores, ids


def exact_top(stored: ShardVectors, queries: np.ndarray, k: int) -> np.ndarray:
    """The ids of the exact k best units of each query, read from the shards a batch at a time."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    offset = 0
    for vectors in stored.batches():
        scores = queries @ vectors.T
        ids = np.broadcast_to(np.arange(offset, offset + len(vectors)), scores.shape)
        merged_scores, merged_ids = np.hstack([best_scores, scores]), np.hstack([best_ids, ids])
        top = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores, best_ids = np.take_along_axis(merged_scores, top, 1), np.take_along_axis(merged_ids, top, 1)
        offset += len(vectors)
    return best_ids


def recall_at_10(stored: ShardVectors, index, choice: IndexChoice, queries: np.ndarray,
                 own: np.ndarray | None = None) -> float:
    """The share of the exact top 10 that the index returns in its top 10, over `queries`; a query that
    is a stored vector (`own`: its row) does not count itself among its neighbours."""
    extra = 0 if own is None else 1
    exact = exact_top(stored, queries, 10 + extra)
    _, approx = search(stored, index, choice, queries, 10 + extra)
    recalls = []
    for i, (a, e) in enumerate(zip(approx, exact)):
        if own is not None:
            a, e = a[a != own[i]][:10], e[e != own[i]][:10]
        recalls.append(len(set(a) & set(e)) / 10)
    return float(np.mean(recalls))


def load(out: Path, choice: IndexChoice):
    index = _faiss().read_index(str(out / FAISS))
    if choice.kind != "exact":
        index.nprobe = choice.nprobe
    return index
