"""tclib.search.vectors: exact search up to a size, IVF-PQ with exact re-ranking above it."""

import numpy as np
import pandas as pd
import pytest

from tclib.errors import ParamsError
from tclib.search import vectors
from tclib.search.store import ShardVectors, write_shard


def test_the_index_is_chosen_by_the_collection_size():
    assert vectors.choose(100_000, 512).kind == "exact"
    big = vectors.choose(1_000_000, 512)
    assert (big.kind, big.nlist, big.pq_bytes, big.rerank) == ("ivfpq", 4096, 64, 100)
    assert vectors.choose(50, 64, "ivfpq").kind == "ivfpq" and vectors.choose(10**7, 64, "exact").kind == "exact"
    with pytest.raises(ParamsError, match="index kind"):
        vectors.choose(10, 64, "hnsw")


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres (the same for every seed), as features of similar videos cluster."""
    centres = np.random.default_rng(0).normal(size=(50, dim))
    rng = np.random.default_rng(seed + 1)
    x = centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_approximate_index_finds_what_exact_search_finds(tmp_path):
    x = clustered(6000, 64)
    units = pd.DataFrame({"shard": ["s0"] * 3000 + ["s1"] * 3000, "row": np.r_[np.arange(3000), np.arange(3000)]})
    write_shard(tmp_path, "s0", "m", [], x[:3000], {})
    write_shard(tmp_path, "s1", "m", [], x[3000:], {})
    choice = vectors.choose(len(x), 64, "ivfpq")
    record = vectors.build(tmp_path, units, 64, choice)
    assert record["kind"] == "ivfpq" and record["recall_at_10"] >= 0.95 and record["nprobe"] >= choice.nprobe
    choice = vectors.IndexChoice(**{k: record[k] for k in ("kind", "nlist", "pq_bytes", "nprobe", "rerank")})
    index = vectors.load(tmp_path, choice)
    queries = clustered(20, 64, seed=1)
    stored = ShardVectors(tmp_path, units)
    scores, ids = vectors.search(stored, index, choice, queries, 10)
    as_stored = x.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ as_stored.T, ids, 1), rtol=1e-5)  # re-ranked exactly
    exact = vectors.exact_top(stored, queries, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact)]) >= 0.9
    tuned = vectors.build(tmp_path, units, 64, vectors.choose(len(x), 64, "ivfpq"), queries=clustered(50, 64, seed=3))
    assert tuned["tuned_on"] == "50 queries" and tuned["recall_at_10"] >= 0.95  # on the queries it was tuned on
