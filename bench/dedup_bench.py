"""Dedup benchmark: our exact and MinHash filters vs text-dedup and datatrove MinHash.

Why: near-dup dedup is the slow filter; the goal is "MinHash near dup at least as fast as
text-dedup, at equal or better F1". All methods see the same text (the `whole_dialogue`
field: role-marked turns joined by newlines) of the first N synthetic dialogues, at Jaccard
threshold 0.7, 5-gram shingles, 128 permutations in 14 bands x 9 rows, and are scored against
the planted exact_dup + near_dup ground truth. Each method runs in its own child process
(wall time and peak RSS of its process tree). Peers run from bench/.venv-peers.

    .venv/bin/python bench/dedup_bench.py --n 200000 --peers      # all four at 200k
    .venv/bin/python bench/dedup_bench.py --n 1470000             # ours only, full size
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    OUT_DIR,
    REPO_ROOT,
    emit_result,
    fmt_int,
    fmt_mib,
    fmt_s,
    log,
    machine_line,
    md_table,
    offline_env,
    run_measured,
)

WAREHOUSE = OUT_DIR / "bench.duckdb"
SYNTH = OUT_DIR / "synth-1470000-seed0"
WORK = OUT_DIR / "dedup"
PEER_PY = REPO_ROOT / "bench" / ".venv-peers" / "bin" / "python"
THRESHOLD, NUM_PERM, BANDS, ROWS, NGRAM = 0.7, 128, 14, 9, 5


def read_dialogues(n: int) -> pa.Table:
    """row_id (= raw id) and messages of the first n dialogues, read-only, in batches."""
    con = duckdb.connect(str(WAREHOUSE), read_only=True)
    sql = (
        "SELECT source_id AS row_id, messages FROM dialogues "
        f"WHERE CAST(source_id AS BIGINT) < {n} ORDER BY CAST(source_id AS BIGINT)"
    )
    reader = con.execute(sql).to_arrow_reader(50_000)
    table = pa.Table.from_batches(list(reader))
    con.close()
    return table


def export_text(n: int) -> Path:
    """Two parquet shards (id, text) of the whole_dialogue field, for the peers."""
    from filters.dedup_base import field_text

    folder = WORK / f"text-{n}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    table = read_dialogues(n)
    text = pa.concat_arrays(
        [field_text(table.slice(s, 50_000), "whole_dialogue") for s in range(0, n, 50_000)]
    )
    out = pa.table({"id": table.column("row_id"), "text": text})
    half = (n + 1) // 2
    pq.write_table(out.slice(0, half), folder / "part-0.parquet")
    pq.write_table(out.slice(half), folder / "part-1.parquet")
    (folder / "done").write_text("ok")
    return folder


# -- children -----------------------------------------------------------------------------


def child_ours(method: str, n: int) -> None:
    import time

    from filters.dedup_base import cluster_sizes
    from filters.exact_dedup import ExactDedupFilter
    from filters.minhash import MinHashFilter

    t0 = time.perf_counter()
    table = read_dialogues(n)
    t_read = time.perf_counter() - t0
    flt = (
        ExactDedupFilter()
        if method == "exact"
        else MinHashFilter(threshold=THRESHOLD, num_perm=NUM_PERM)  # derived layout: 20 x 6
        if method == "minhash"
        else MinHashFilter(threshold=THRESHOLD, num_perm=NUM_PERM, bands=BANDS, rows=ROWS)
    )
    res = flt.apply(table)
    dropped = res.dropped().column("row_id").to_pylist()
    emit_result(
        {
            "read_s": t_read,
            "filter_s": res.stats.seconds,
            "dropped": dropped,
            "clusters": cluster_sizes(res.scores).to_pylist(),
        }
    )


TEXT_DEDUP_READ = """
import json, sys, datasets
kept = list(datasets.load_from_disk(sys.argv[1])["id"])
print("BENCH_RESULT " + json.dumps({"kept": kept}))
"""

DATATROVE = f"""
import glob, gzip, json, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import (
    MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig

if __name__ == "__main__":
    data, base = sys.argv[1], sys.argv[2]
    cfg = MinhashConfig(hash_config=HashConfig(precision=64), n_grams={NGRAM},
                        num_buckets={BANDS}, hashes_per_bucket={ROWS})
    def reader():
        return ParquetReader(data, glob_pattern="*.parquet", text_key="text", id_key="id")
    LocalPipelineExecutor([reader(), MinhashDedupSignature(f"{{base}}/sigs", config=cfg)],
                          tasks=2, workers=2, logging_dir=f"{{base}}/logs/1").run()
    LocalPipelineExecutor([MinhashDedupBuckets(f"{{base}}/sigs", f"{{base}}/buckets", config=cfg)],
                          tasks=cfg.num_buckets, workers=2, logging_dir=f"{{base}}/logs/2").run()
    LocalPipelineExecutor([MinhashDedupCluster(f"{{base}}/buckets", f"{{base}}/remove", config=cfg)],
                          tasks=1, logging_dir=f"{{base}}/logs/3").run()
    LocalPipelineExecutor([reader(), MinhashDedupFilter(f"{{base}}/remove",
                           exclusion_writer=JsonlWriter(f"{{base}}/removed"))],
                          tasks=2, workers=2, logging_dir=f"{{base}}/logs/4").run()
    ids = []
    for path in glob.glob(f"{{base}}/removed/*.jsonl.gz"):
        with gzip.open(path, "rt") as fh:
            ids += [json.loads(line)["id"] for line in fh]
    print("BENCH_RESULT " + json.dumps({{"dropped": ids}}))
"""


# -- driver -------------------------------------------------------------------------------


def truth(n: int) -> pa.Table:
    """Planted copies (record_id, target_id, plant) among the first n dialogues."""
    gt = pq.read_table(SYNTH / "ground_truth.parquet")
    gt = gt.filter(pc.equal(gt.column("dataset"), "ultrachat"))
    gt = gt.filter(pc.is_in(gt.column("plant"), pa.array(["exact_dup", "near_dup"])))
    gt = gt.filter(pc.less(pc.cast(gt.column("record_id"), pa.int64()), n))
    return gt.select(["record_id", "target_id", "plant"])


def score(dropped: set[str], gt: pa.Table) -> dict[str, float]:
    """Precision/recall that do not depend on which member a method keeps.

    A truth cluster is a target and its planted copies (size s); a method should drop s - 1
    of them, whichever. TP = min(dropped in cluster, s - 1); FP = drops outside every
    cluster plus clusters dropped entirely. Per plant, a (copy, target) pair counts as found
    when exactly one of the two is dropped. `strict_f1` instead takes the planted copies
    as the only right answer (keep-first semantics).
    """
    copies, targets = gt["record_id"].to_pylist(), gt["target_id"].to_pylist()
    plants = gt["plant"].to_pylist()
    members: dict[str, set[str]] = {}
    for c, t in zip(copies, targets, strict=True):
        members.setdefault(t, {t}).add(c)
    tp = fp = 0
    in_cluster: set[str] = set()
    for mem in members.values():
        in_cluster |= mem
        k = len(mem & dropped)
        tp += min(k, len(mem) - 1)
        fp += k - min(k, len(mem) - 1)
    fp += len(dropped - in_cluster)
    need = sum(len(m) - 1 for m in members.values())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / need if need else 1.0
    out = {"P": p, "R": r, "F1": 2 * p * r / (p + r) if p + r else 0.0}
    for plant in ("exact_dup", "near_dup"):
        pairs = [(c, t) for c, t, pl in zip(copies, targets, plants, strict=True) if pl == plant]
        ok = sum((c in dropped) != (t in dropped) for c, t in pairs)
        out[plant] = ok / len(pairs) if pairs else 1.0
    sp = len(dropped & set(copies)) / len(dropped) if dropped else 1.0
    sr = len(dropped & set(copies)) / len(copies) if copies else 1.0
    out["strict_f1"] = 2 * sp * sr / (sp + sr) if sp + sr else 0.0
    return out


def run_method(method: str, n: int) -> dict[str, Any]:
    env = offline_env()
    if method in ("exact", "minhash", "minhash-14x9"):
        m = run_measured([sys.executable, __file__, "--child", method, "--n", str(n)], env=env)
        res = m.result
        return {
            "wall": m.wall_s,
            "rss": m.peak_rss_bytes,
            "dropped": set(res["dropped"]),
            "note": f"read {res['read_s']:.0f}s + filter {res['filter_s']:.0f}s",
            "clusters": res["clusters"],
        }
    folder = export_text(n)
    base = WORK / f"{method}-{n}"
    shutil.rmtree(base, ignore_errors=True)  # datatrove skips finished tasks: start clean
    if method == "text-dedup":
        args = [
            str(PEER_PY), "-m", "text_dedup.minhash", "--path", "parquet",
            "--data_files", str(folder / "*.parquet"), "--split", "train",
            "--cache_dir", str(base / "cache"), "--output", str(base / "output"),
            "--column", "text", "--threshold", str(THRESHOLD), "--num_perm", str(NUM_PERM),
            "--b", str(BANDS), "--r", str(ROWS), "--ngram", str(NGRAM),
            "--hash_func", "xxh3", "--num_proc", "2",
        ]  # fmt: skip
        m = run_measured(args, env=env)
        kept = run_measured(
            [str(PEER_PY), "-c", TEXT_DEDUP_READ, str(base / "output")], env=env
        ).result["kept"]
        parts = sorted(folder.glob("*.parquet"))
        ids = set(
            pa.concat_tables([pq.read_table(f, columns=["id"]) for f in parts])["id"].to_pylist()
        )
        return {"wall": m.wall_s, "rss": m.peak_rss_bytes, "dropped": ids - set(kept), "note": ""}
    script = WORK / "datatrove_run.py"
    script.write_text(textwrap.dedent(DATATROVE))
    m = run_measured([str(PEER_PY), str(script), str(folder), str(base)], env=env)
    return {
        "wall": m.wall_s,
        "rss": m.peak_rss_bytes,
        "dropped": set(m.result["dropped"]),
        "note": "",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--child")
    ap.add_argument("--methods", default="exact,minhash")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.child:
        child_ours(args.child, args.n)
        return
    gt = truth(args.n)
    rows = []
    for method in args.methods.split(","):
        log(f"{method} on {args.n:,} dialogues")
        r = run_method(method, args.n)
        m = score(r["dropped"], gt)
        rows.append(
            [method, fmt_int(args.n), fmt_s(r["wall"]), fmt_int(args.n / r["wall"]),
             fmt_mib(r["rss"]), fmt_int(len(r["dropped"])), f"{m['P']:.4f}", f"{m['R']:.4f}",
             f"{m['F1']:.4f}", f"{m['exact_dup']:.4f}", f"{m['near_dup']:.4f}",
             f"{m['strict_f1']:.4f}", r["note"]]
        )  # fmt: skip
        log(json.dumps(rows[-1]))
        if "clusters" in r:
            log(f"{method} cluster sizes: {r['clusters']}")
    table = md_table(
        ["method", "rows", "wall s", "rows/s", "peak RSS MiB", "dropped", "P", "R", "F1",
         "R exact_dup", "R near_dup", "strict F1", "note"],
        rows, "lrrrrrrrrrrrl",
    )  # fmt: skip
    text = f"n = {args.n:,}; truth = exact_dup + near_dup plants; {machine_line()}\n\n{table}\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
