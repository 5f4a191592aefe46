"""fp32 vs dynamic-int8 torch embedding: speed and neighbour agreement (issue 3).

    python -m bench.embed_backends_bench [--texts 2000] [--rounds 3]

Embeds the first `--texts` first user turns of bench/out/bench.duckdb (opened read-only)
with all-MiniLM-L6-v2 on 2 torch threads, batch 64, once per backend per round, backends
interleaved so drift in machine load hits both. Reports the median texts/s, the cosine
between each text's fp32 and int8 vectors, recall@10 of int8 kNN against fp32 kNN (faiss
flat inner product, self excluded) and how the dedup pair sets at fixed thresholds compare.
Writes bench/results/embed_backends.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import duckdb
import faiss
import numpy as np
import pyarrow as pa

from bench.common import OUT_DIR, log, machine_info, machine_line, md_table, write_result
from filters.embed import Backend, SentenceTransformerEmbedder

BENCH_DB = OUT_DIR / "bench.duckdb"
BACKENDS: tuple[Backend, ...] = ("torch", "torch-int8")
K = 10


def load_texts(n: int) -> pa.Array:
    con = duckdb.connect(str(BENCH_DB), read_only=True)
    try:
        tbl = con.execute("SELECT first_user_turn FROM dialogues LIMIT ?", [n]).to_arrow_table()
    finally:
        con.close()
    return tbl.column("first_user_turn").combine_chunks()


def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarities and ids of each row's k nearest other rows (inner product, self dropped)."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, ids = index.search(x, k + 1)
    out = np.empty((len(x), k), np.int64)
    out_s = np.empty((len(x), k), np.float32)
    for r, row in enumerate(ids):
        keep = row != r
        out[r] = row[keep][:k]
        out_s[r] = sims[r][keep][:k]
    return out_s, out


def pairs_above(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    sims = x @ x.T
    i, j = np.nonzero(np.triu(sims >= threshold, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    info = machine_info()  # load average at start, before models load
    texts = load_texts(args.texts)
    n = len(texts)
    log(f"{n} texts loaded")
    emb = {
        b: SentenceTransformerEmbedder(progress=False, threads=2, batch_size=64, backend=b)
        for b in BACKENDS
    }
    for b in BACKENDS:  # warm-up: first-call allocations, thread pools
        emb[b].embed(texts[:64])
    rates: dict[str, list[float]] = {b: [] for b in BACKENDS}
    vecs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for b in BACKENDS:
            t0 = time.perf_counter()
            vecs[b] = emb[b].embed(texts)
            dt = time.perf_counter() - t0
            rates[b].append(n / dt)
            log(f"round {r + 1} {b}: {n / dt:.1f} texts/s")

    fp, q = vecs["torch"], vecs["torch-int8"]
    cos = np.sum(fp * q, axis=1)
    (s_fp, nn_fp), (_, nn_q) = knn(fp, K), knn(q, K)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(nn_fp, nn_q, strict=True)])
    top1 = float(np.mean(nn_fp[:, 0] == nn_q[:, 0]))
    near = s_fp[:, 0] >= 0.85  # queries with a near-duplicate neighbour under fp32
    top1_near = float(np.mean(nn_fp[near, 0] == nn_q[near, 0])) if near.any() else float("nan")
    gap = s_fp[:, 0] - s_fp[:, K - 1]  # how far the 1st fp32 neighbour stands from the 10th
    ratios = [qi / fi for fi, qi in zip(rates["torch"], rates["torch-int8"], strict=True)]

    med = {b: statistics.median(rates[b]) for b in BACKENDS}
    speed_rows = [
        [b, emb[b].model_id, *(f"{x:.1f}" for x in rates[b]), f"{med[b]:.1f}"] for b in BACKENDS
    ]
    pair_rows = []
    for t in (0.85, 0.90, 0.95):
        a, c = pairs_above(fp, t), pairs_above(q, t)
        jac = len(a & c) / len(a | c) if a | c else 1.0
        pair_rows.append([f"{t:.2f}", len(a), len(c), len(a & c), f"{jac:.3f}"])
    rounds_h = [f"round {i + 1}" for i in range(args.rounds)]

    text = "\n".join(
        [
            "# Embedding backends: fp32 vs dynamic int8 (torch, CPU)",
            "",
            f"`python -m bench.embed_backends_bench --texts {args.texts} --rounds {args.rounds}`. "
            f"{n:,} first user turns (`SELECT first_user_turn FROM dialogues LIMIT {args.texts}`, "
            "synthetic set, bench/out/bench.duckdb read-only), all-MiniLM-L6-v2 at 256 tokens, "
            "2 torch threads, batch 64. int8 = `torch.ao.quantization.quantize_dynamic` on the "
            "transformer's Linear layers (qint8 per-channel weights, activations quantised per batch). "
            "Backends interleaved per round on the same texts, after one warm-up batch each. "
            + machine_line(info),
            "",
            "## Throughput (texts/s)",
            "",
            md_table(
                ["backend", "model_id", *rounds_h, "median"],
                speed_rows,
                "ll" + "r" * (args.rounds + 1),
            ),
            "",
            f"Speedup int8 / fp32 (medians): **{med['torch-int8'] / med['torch']:.2f}x**; "
            f"per round {', '.join(f'{r:.2f}x' for r in ratios)} (each round's pair ran "
            "back to back, so the ratio is steadier than the rates when load changes).",
            "",
            "## Agreement with fp32",
            "",
            md_table(
                ["measure", "value"],
                [
                    ["cosine(fp32, int8) mean", f"{cos.mean():.4f}"],
                    ["cosine(fp32, int8) min", f"{cos.min():.4f}"],
                    ["cosine(fp32, int8) 1st percentile", f"{np.percentile(cos, 1):.4f}"],
                    [f"recall@{K} of int8 kNN vs fp32 kNN (self excluded)", f"{recall:.4f}"],
                    ["same nearest neighbour (top-1)", f"{top1:.4f}"],
                    [
                        f"same top-1 where fp32 top-1 cosine >= 0.85 (n={int(near.sum())})",
                        f"{top1_near:.4f}",
                    ],
                    ["fp32 1st-neighbour cosine, median", f"{np.median(s_fp[:, 0]):.4f}"],
                    [
                        f"fp32 1st minus {K}th neighbour cosine, median",
                        f"{np.median(gap):.4f}",
                    ],
                ],
                "lr",
            ),
            "",
            "The synthetic turns are pseudo-words from one vocabulary: apart from planted "
            "near-duplicates, a text's nearest neighbours sit within a few hundredths of cosine "
            "of each other (median 1st-10th gap above), so an int8 error of ~0.04 per vector "
            "reorders them and recall@10 is low. On near-duplicates, which dedup and decontam "
            "act on, the rows above and the pair sets below are the measure that matters; "
            "real prompts with a clearer neighbour structure were not measured here.",
            "",
            "Dedup pairs (cosine >= threshold among the same texts) under each backend:",
            "",
            md_table(
                ["threshold", "fp32 pairs", "int8 pairs", "both", "Jaccard"], pair_rows, "rrrrr"
            ),
        ]
    )
    write_result("embed_backends.md", text)


if __name__ == "__main__":
    main()
