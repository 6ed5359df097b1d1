"""The query-encoding serving path (``serving.QueryEncoder``) against plain SentenceTransformer.encode:
sentences per second."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
from common import BASE, minutes_left


def bench_encode(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Sentences/s: plain SentenceTransformer.encode one query at a time vs the plugin's serving path.

    Rounds alternate between the two so that load from other processes hits both alike.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    from domainfm.models import resolve_model

    from domainfm_customer_service.readers import load_source
    from domainfm.engine.query_encoder import QueryEncoder

    path = resolve_model(BASE).path
    test = load_source("banking77").test_utterances or []
    n = 30 if args.smoke else args.encode_queries
    left = minutes_left(args)
    if left is not None and left < 6:
        n = 30
    texts = [r["text"] for r in test[:: max(1, len(test) // n)]][:n]
    st = SentenceTransformer(str(path), device=device)
    qe = QueryEncoder(path, device=device, max_length=128)
    ref = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    ours = np.vstack([qe.encode_one(t) for t in texts])
    agreement = float((ref * ours).sum(1).min())
    for t in texts[:10]:
        st.encode([t], normalize_embeddings=True)
        qe.encode_one(t)
    times = {"st_one": 0.0, "st_one_1thread": 0.0, "st_batch": 0.0, "serving_one": 0.0, "serving_batch": 0.0}
    rounds = 3
    default_threads = os.cpu_count() or 1  # "plain" encode: torch's default of one thread per core
    for _ in range(rounds):
        torch.set_num_threads(default_threads)
        t0 = time.perf_counter()
        for t in texts:
            st.encode([t], normalize_embeddings=True, convert_to_numpy=True)
        times["st_one"] += time.perf_counter() - t0
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        for t in texts:
            st.encode([t], normalize_embeddings=True, convert_to_numpy=True)
        times["st_one_1thread"] += time.perf_counter() - t0
        torch.set_num_threads(args.threads)  # the serving configuration
        t0 = time.perf_counter()
        st.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        times["st_batch"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for t in texts:
            qe.encode_one(t)
        times["serving_one"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        qe.encode(texts, batch_size=64)
        times["serving_batch"] += time.perf_counter() - t0
    rate = {k: rounds * len(texts) / v for k, v in times.items()}
    plain = max(rate["st_one"], rate["st_one_1thread"])  # the faster thread setting of plain encode
    return {
        # What a chat server gains over calling SentenceTransformer.encode once per incoming query: the
        # server's micro-batcher hands queries that arrive together to QueryEncoder as one batch. Most of the
        # gain is batching itself: the like-for-like batched comparison is reported next to it.
        "speedup_vs_encode": rate["serving_batch"] / plain,
        "speedup_single_query_vs_encode": rate["serving_one"] / plain,
        "speedup_batched_vs_st_encode_batched": rate["serving_batch"] / rate["st_batch"],
        "encode_settings": {
            "queries": len(texts), "rounds": rounds, "device": device,
            "torch_threads_st_encode": default_threads, "torch_threads_serving_batched": args.threads,
            "sentences_per_second_st_encode_one_at_a_time_1_thread": rate["st_one_1thread"],
            "torch_threads_serving_single_query": qe.single_query_threads,
            "load_average_before_part": os.getloadavg(),
            "sentences_per_second_st_encode_one_at_a_time": rate["st_one"],
            "sentences_per_second_serving_one_at_a_time": rate["serving_one"],
            "sentences_per_second_serving_batched_64": rate["serving_batch"],
            "sentences_per_second_st_encode_batched_64": rate["st_batch"],
            "min_cosine_serving_vs_st": agreement,
            "serving_path": "domainfm.engine.query_encoder.QueryEncoder: tokenizer + AutoModel forward under inference_mode, "
                            "mean pooling, L2 norm; queries arriving together are encoded as one length-sorted batch (batch 64)",
            "speedup_vs_encode_definition": "sentences/s of the batched serving path (batch 64, 1 thread) / sentences/s of "
                                            "SentenceTransformer.encode called once per query (the faster of 1 and "
                                            f"{default_threads} torch threads); speedup_batched_vs_st_encode_batched "
                                            "compares both batched (same batch size and threads): the serving path's "
                                            "own advantage, without the batching gain",
        },
    }
