"""The duplicate-id pass on Ray: extract/job/duplicates.py's steps as Ray tasks."""
from __future__ import annotations


from extract.core.job_config import RayConfig


def settle_ray(out: str, data_dirs: tuple[str, ...], cfg: RayConfig) -> int:
    """Duplicate ids settled as Ray tasks with extract/job/duplicates.py's three steps (keys ->
    hash partitions, each settled in a task -> shard ranges rewritten in tasks); the driver holds
    shard ids and row counts only. Spill under ``OUT/_dups`` (removed at start and end). Without a
    running Ray the same steps run here (duplicates.settle). Returns the number of duplicate rows."""
    import ray

    from extract.core import fs
    from extract.job import duplicates as dup

    if not ray.is_initialized():
        return dup.settle(out, data_dirs)
    shard_ids = dup.shard_order(out)
    if not shard_ids:
        return 0
    n = len(shard_ids)

    def keys_task(ids_ref, lo: int, hi: int, folder: str, name: str, fan: int) -> list[int]:
        return dup.spill_keys(out, [(i, ids_ref[i]) for i in range(lo, hi)], folder, name, fan)

    spill = fs.join(out, dup.RAY_SPILL)
    dup.remove_spill(spill)
    # A whole CPU a task: each keeps a core busy reading and writing Parquet, and with a fraction Ray
    # ran more at once than there are cores, each in a new worker process paying Python's, Ray's
    # and pyarrow's start-up again.
    opts = {"num_cpus": max(1.0, cfg.cpus_per_task), "max_retries": 3}
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        groups = min(n, 4 * cpus)
        bounds = [(g * n // groups, (g + 1) * n // groups) for g in range(groups)]
        fan = dup.fanout_for(dup.estimate_rows(out, shard_ids), dup.MAX_ROWS)
        ids_ref = ray.put(shard_ids)
        keys_dir, later_dir = fs.join(spill, "keys"), fs.join(spill, "later")
        counts = ray.get([ray.remote(keys_task).options(**opts).remote(ids_ref, lo, hi, keys_dir, f"g{g:05d}", fan)
                          for g, (lo, hi) in enumerate(bounds)])
        # Each partition reads its files in group order, which is shard order.
        parts = [p for p in range(fan) if any(c[p] for c in counts)]
        settled = ray.get([ray.remote(dup.partition_task).options(**opts).remote(
            [fs.join(keys_dir, f"g{g:05d}-{p:05d}.arrow") for g in range(groups) if counts[g][p]],
            sum(c[p] for c in counts), later_dir, f"p{p:05d}", groups, n) for p in parts])
        total = sum(found for found, _ in settled)
        ray.get([ray.remote(dup.rewrite_task).options(**opts).remote(
            out, data_dirs, ids_ref,
            [fs.join(later_dir, f"p{p:05d}-{r:05d}.arrow") for p, (_, c) in zip(parts, settled) if c[r]],
            sum(c[r] for _, c in settled)) for r in range(groups) if any(c[r] for _, c in settled)])
        return total
    finally:
        dup.remove_spill(spill)
