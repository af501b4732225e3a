"""Does the pipeline, not the model, set the pace? The real Ray job with a fake model (issue 16, item 5).

    python scripts/bench_pipeline.py                    # 30,000 documents, 3.2M words (docs/benchmarks/pipeline.md)
    python scripts/bench_pipeline.py --docs 3000 --ceiling-shards 1   # smoke run (mostly Ray start-up)

1. Corpus: the records of data/sample/reuters_sample.jsonl repeated with new ids (``<id>-r00001``)
   into one JSON-lines file of ``--docs`` records, read with the job's default settings
   (configs/extract.yaml: title + blank line + body, ``input.shard_bytes: auto``).
2. The CPU stages' ceiling, in this process, pinned to one core: the job's own ``Processor.prepare``
   (read, tokenise, windows) and ``Processor.finish`` (merge windows, decode, write Parquet) on the
   first ``--ceiling-shards`` shards of the same plan, the model stage in between done by the fake
   model below. Words per CPU-second of prepare + finish = what one core feeds a model.
3. The real job: ``extract.job.entities.run`` (what ``python -m extract run`` calls) on the embedded
   local Ray, with ``--actors`` model actors (1: a GPU node's one model replica). The only change
   is the processor class the driver hands Ray: ``FakeShardProcessor`` (a ``ShardProcessor`` whose
   model stage keeps the job's own batching, ``batch_tensors`` and slicing, but whose "engine" is a
   ``FakeSession`` returning seeded random float32 logits of shape (batch, width, labels): no torch
   forward, no weights loaded). The class is defined here and reaches Ray's worker processes
   pickled by value (cloudpickle does so for ``__main__``; ``register_pickle_by_value`` when this
   file is imported as a module), so no file under extract/ changes.
4. Prints (and writes to runs/bench_pipeline/<stamp>/table.md and result.json) a markdown table:
   corpus, ceiling per core, cores counted for the CPU stages, the job's ceiling, the fake-model
   job's words/s (whole job from the call to run.json; run.json's own ``this_run``; steady state
   between the first and the last shard written) against the ceiling, the goal (>= 0.8), and where
   the machine's CPU time went during the job (read from /proc: CPU-stage workers, model actor,
   driver, Ray's own processes).

Words are whitespace words of the text the job reads (the unit of the words/s a core in
docs/benchmarks/extract.md); the job's own word count (tokenizer words, run.json's ``words``) is
printed beside them.
Every output goes under runs/bench_pipeline/ (git-ignored).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from extract.job.entities import ShardProcessor  # noqa: E402
from extract.model.loaded import Loaded, load_tokenizer  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "reuters_sample.jsonl"
CONFIG = ROOT / "configs" / "extract.yaml"
OUT_ROOT = ROOT / "runs" / "bench_pipeline"
GOAL = 0.8
INPUTS = ("input_ids", "token_type_ids", "attention_mask")


# -- the fake model ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Input:
    name: str


class FakeSession:
    """Stands in for an ONNX Runtime session (extract/model/onnx.py ``run_logits`` calls
    ``get_inputs`` and ``run``): seeded random float32 logits (batch, width, n_labels), no forward."""

    def __init__(self, n_labels: int, seed: int):
        self.n_labels = n_labels
        self.rng = np.random.default_rng(seed)
        self.seconds = 0.0  # wall time spent making logits (the fake "forward")
        self.calls = 0

    def get_inputs(self) -> list[_Input]:
        return [_Input(n) for n in INPUTS]

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        batch, width = feed["input_ids"].shape
        logits = self.rng.standard_normal((batch, width, self.n_labels), dtype=np.float32)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return [logits]


class FakeShardProcessor(ShardProcessor):
    """The entity job's processor with the forward pass replaced by ``FakeSession``. The CPU stages
    (``load_model=False``) are ShardProcessor's own; the model stage loads the tokenizer only (for
    its special-token ids) and runs ``forward_docs`` -> ``run_windows`` as the job does, through the
    non-torch engine branch. Class attributes travel with the class (pickled by value)."""

    seed = 0
    stats_dir = ""  # where each model actor writes its running totals (fake-<pid>.json); "" = nowhere

    def __init__(self, cfg: Any, out: str, model_id: str = "", threads: int = 0, load_model: bool = True):
        super().__init__(cfg, out, model_id, threads, load_model=False)
        self.infer_wall = self.infer_cpu = 0.0
        self.infer_shards = 0
        if load_model:
            self.loaded = Loaded(model=None, tokenizer=load_tokenizer(self.model_path), labels=list(self.labels),
                                 settings=self.settings, device="cpu", dtype=None, model_id=self.model_id,
                                 engine="fake-random-logits",
                                 session=FakeSession(len(self.labels), self.seed + os.getpid() % 1000))

    def _note_stage(self, step: str, c0: float, c1: float) -> None:
        """A CPU-stage worker's running totals (stage-<pid>.json): the process's CPU when its first
        step began (start-up: Python, Ray's worker, the imports, the tokenizer), CPU inside each
        step, and the process's CPU now; the rest is Ray Data's per-task work and transport."""
        if not self.stats_dir:
            return
        if not hasattr(self, "stage_note"):
            self.stage_note = {"pid": os.getpid(), "startup_cpu": c0, "first_at": time.time(), "prepare_cpu": 0.0,
                               "finish_cpu": 0.0,
                               "prepare": 0, "finish": 0}
        note = self.stage_note
        note[f"{step}_cpu"] += c1 - c0
        note[step] += 1
        note["process_cpu"] = c1
        self._write_note("stage", note)

    def _write_note(self, kind: str, note: dict) -> None:
        """<stats_dir>/<kind>-<pid>.json, replaced whole (the bench reads them after the job)."""
        path = Path(self.stats_dir) / f"{kind}-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(note))
        tmp.replace(path)

    def pieces(self, shard: Any, whole: bool = False) -> Any:
        c0 = time.process_time()
        for piece in super().pieces(shard, whole):  # the CPU spent preparing each piece, not the time it waits
            self._note_stage("prepare", c0, time.process_time())
            yield piece
            c0 = time.process_time()

    def finish(self, payload: Any) -> dict:
        c0 = time.process_time()
        out = super().finish(payload)
        self._note_stage("finish", c0, time.process_time())
        return out

    def infer(self, payload: Any) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        out = super().infer(payload)
        self.infer_wall += time.perf_counter() - w0
        self.infer_cpu += time.process_time() - c0
        self.infer_shards += 1
        if self.stats_dir:
            session = self.loaded.session
            note = {"pid": os.getpid(), "shards": self.infer_shards, "infer_wall": self.infer_wall,
                    "infer_cpu": self.infer_cpu, "forward_wall": session.seconds, "forward_calls": session.calls,
                    "process_cpu": time.process_time()}
            self._write_note("fake", note)
        return out


# -- corpus ------------------------------------------------------------------------------------
def text_words(rec: dict, columns: tuple[str, ...]) -> int:
    """Whitespace words of the text the job reads (the text columns joined by a blank line)."""
    return sum(len(rec[c].split()) for c in columns if isinstance(rec.get(c), str))


def make_corpus(path: Path, docs: int, columns: tuple[str, ...] = ("title", "body")) -> dict:
    """``docs`` records of the bundled sample, repeated with new ids, as one JSON-lines file."""
    sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    words = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(docs):
            rec = dict(sample[i % len(sample)])
            rec["id"] = f"{rec['id']}-r{i // len(sample):05d}"
            words += text_words(rec, columns)
            f.write(json.dumps(rec) + "\n")
    return {"docs": docs, "words": words, "bytes": path.stat().st_size}


def job_config(corpus: Path, out: Path, actors: int, cpus_per_actor: float | None) -> Any:
    from extract.core.config import load
    from extract.core.job_config import ExtractConfig

    sets = ["runner=ray", f"input.path={corpus}", f"output.path={out}", f"ray.num_actors={actors}",
            "show_progress=false"]
    if cpus_per_actor is not None:
        sets.append(f"ray.cpus_per_actor={cpus_per_actor}")
    return load(ExtractConfig, CONFIG, sets)


def count_arrays(blob: bytes) -> int:
    """Arrays in a stage payload (extract/job/transport.py: the JSON tree names each one)."""
    n = int.from_bytes(blob[8:16], "little")

    def walk(x: Any) -> int:
        if isinstance(x, dict):  # "a": one array; "A": a column of arrays, one length each
            own = 1 if isinstance(x.get("a"), list) else len(x["A"][3]) if isinstance(x.get("A"), list) else 0
            return own + sum(walk(v) for v in x.values())
        if isinstance(x, list):
            return sum(walk(v) for v in x)
        return 0

    return walk(json.loads(blob[16:16 + n]))


# -- 2. the CPU stages' ceiling -----------------------------------------------------------------
def measure_ceiling(cfg: Any, out: Path, n_shards: int) -> dict:
    """prepare -> (transport) -> fake infer -> (transport) -> finish on the plan's first shards,
    in this process pinned to one core; CPU seconds per step."""
    from extract.io.plan import plan
    from extract.job import transport
    from extract.model.loaded import model_id

    shards, _ = plan(cfg.input, 1)
    todo = [s for _, s in zip(range(n_shards), shards)]
    proc = FakeShardProcessor(cfg, str(out), model_id(proc_model_dir(cfg)), load_model=True)
    import extract.model.predict  # noqa: F401 - imports and the tokenizer before timing
    import extract.text.spans  # noqa: F401

    # transport: what the job adds between the stages (extract/job/transport.py), by who pays it:
    # the CPU tasks pack prepare's payload and unpack the model's; the model actor the other two.
    cpu = {"prepare": 0.0, "infer": 0.0, "forward": 0.0, "finish": 0.0, "transport_cpu_tasks": 0.0,
           "transport_actor": 0.0}
    docs = words = job_words = entities = arrays = 0
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    w0 = time.perf_counter()
    try:
        for shard in todo:
            c = time.process_time()
            payload = proc.prepare(shard)
            cpu["prepare"] += time.process_time() - c
            c = time.process_time()
            blob = transport.dumps(payload)
            cpu["transport_cpu_tasks"] += time.process_time() - c
            c = time.process_time()
            payload = transport.loads(blob)
            cpu["transport_actor"] += time.process_time() - c
            c, f0 = time.process_time(), proc.loaded.session.seconds
            payload = proc.infer(payload)
            cpu["infer"] += time.process_time() - c
            cpu["forward"] += proc.loaded.session.seconds - f0  # wall, on one pinned core ~ CPU
            c = time.process_time()
            blob = transport.dumps(payload)
            cpu["transport_actor"] += time.process_time() - c
            arrays += count_arrays(blob)
            c = time.process_time()
            payload = transport.loads(blob)
            cpu["transport_cpu_tasks"] += time.process_time() - c
            words += sum(len(r.text.split()) for r in payload.records if r.text)
            c = time.process_time()
            stats = proc.finish(payload)
            cpu["finish"] += time.process_time() - c
            docs += int(stats["docs"])
            job_words += int(stats["words"])
            entities += int(stats["entities"])
    finally:
        os.sched_setaffinity(0, before)
    if not entities:  # random logits find entities; none means every record failed its model stage
        raise SystemExit(f"the fake model found no entities in {docs} docs: its model stage failed "
                         f"(see the error column of {out}/docs)")
    both = cpu["prepare"] + cpu["finish"]
    with_transport = both + cpu["transport_cpu_tasks"]
    return {"shards": len(todo), "docs": docs, "words": words, "job_words": job_words, "entities": entities,
            "arrays_per_shard": arrays / max(1, len(todo)), "cpu": cpu, "wall": time.perf_counter() - w0,
            "per_core_wps_with_transport": words / with_transport,
            "actor_wps_transport_only": words / cpu["transport_actor"],
            "prepare_wps": words / cpu["prepare"], "finish_wps": words / cpu["finish"],
            "per_core_wps": words / both, "per_core_job_wps": job_words / both,
            "forward_share": cpu["infer"] / (both + cpu["infer"]),
            "forward_only_share": cpu["forward"] / (both + cpu["infer"])}


def both_ceilings(before: dict, after: dict) -> dict:
    """The ceiling measured before the job, with the per-core rate the mean of before and after."""
    return {**before, "before_wps": before["per_core_wps"], "after_wps": after["per_core_wps"],
            "per_core_wps": (before["per_core_wps"] + after["per_core_wps"]) / 2}


def proc_model_dir(cfg: Any) -> Path:
    from extract.model.files import local_model_dir

    return Path(local_model_dir(cfg.model.path))


# -- 3. the real job with the fake model ----------------------------------------------------------
def _proc_stat(pid: str) -> tuple[int, float, float, str] | None:
    """(ppid, own CPU s, reaped children's CPU s, command line) of a live process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick, cmd


def _children(pid: int) -> list[int]:
    """A live process's children, from each of its threads' /proc children list."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                continue
    except OSError:
        pass
    return kids


SYSTEM_ACTORS = ("_StatsActor", "ActorLocationTracker", "_AutoscalingCoordinatorActor", "DashboardAgent",
                 "RuntimeEnvAgent")


class CpuSampler:
    """CPU seconds of this process's descendants (the embedded Ray's processes), read from /proc
    every ``interval`` s while the job runs, so processes that exit before the end (Ray Data's
    workers go when the dataset is done) still count with their last reading. Roles come from
    every title a process showed (Ray renames workers ``ray::<task or actor>``)."""

    def __init__(self, interval: float = 0.5, actor_hint: str = "Infer"):
        self.interval = interval
        self.actor_hint = actor_hint
        self.seen: dict[int, dict] = {}  # pid -> {"cpu": s, "titles": set}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        # From this process down through /proc/<pid>/task/*/children: only the job's own processes
        # are read (a scan of every pid in /proc cost this driver seconds of CPU in a job).
        todo = _children(os.getpid())
        while todo:
            pid = todo.pop()
            info = _proc_stat(str(pid))
            if info is None:
                continue
            todo += _children(pid)
            entry = self.seen.setdefault(pid, {"cpu": 0.0, "titles": set()})
            entry["cpu"] = max(entry["cpu"], info[1])
            entry["titles"].add(info[3].split(" ")[0][:80] if info[3] else "?")

    def role(self, titles: set[str], actor_pids: set[int], pid: int) -> str:
        if pid in actor_pids or any(self.actor_hint in t for t in titles):
            return "model_actor"
        ray_titles = [t for t in titles if t.startswith("ray::")]
        if not ray_titles or any(a in t for t in ray_titles for a in SYSTEM_ACTORS):
            return "ray_processes"  # gcs, raylet, dashboard, log monitor, Ray's own actors
        return "cpu_stage_workers"  # prepare / finish tasks (and the duplicate-settling tasks, idle workers)

    def by_role(self, actor_pids: set[int]) -> dict:
        seconds = {"cpu_stage_workers": 0.0, "model_actor": 0.0, "ray_processes": 0.0}
        count = {k: 0 for k in seconds}
        titles: dict[str, set[str]] = {k: set() for k in seconds}
        each = []  # per process, for result.json: which of Ray's processes cost what
        for pid, entry in self.seen.items():
            r = self.role(entry["titles"], actor_pids, pid)
            seconds[r] += entry["cpu"]
            count[r] += 1
            titles[r] |= entry["titles"]
            each.append({"pid": pid, "role": r, "cpu": entry["cpu"], "titles": sorted(entry["titles"])})
        return {"seconds": seconds, "processes": count, "names": {k: sorted(v) for k, v in titles.items()},
                "each": sorted(each, key=lambda e: -e["cpu"])}


def run_fake_job(cfg: Any, stats_dir: Path) -> dict:
    """``extract.job.entities.run`` with FakeShardProcessor as the job's processor; timings, run.json
    and the CPU split (read before Ray shuts down)."""
    import extract.job.entities as entities
    import ray
    import ray.cloudpickle

    module = sys.modules[FakeShardProcessor.__module__]
    if module.__name__ != "__main__":  # imported (tests): make Ray's workers get the class by value too
        ray.cloudpickle.register_pickle_by_value(module)
    stats_dir.mkdir(parents=True, exist_ok=True)
    FakeShardProcessor.stats_dir = str(stats_dir)
    real_spec = entities.job_spec

    def fake_spec(c: Any) -> Any:
        return dataclasses.replace(real_spec(c), processor_cls=FakeShardProcessor)

    entities.job_spec = fake_spec  # run() looks job_spec up at call time: the one change to the job
    try:
        with CpuSampler() as sampler:
            t_driver = os.times()
            t0, started_at = time.perf_counter(), time.time()
            report = entities.run(cfg)
            wall = time.perf_counter() - t0
            t_driver_end = os.times()
    finally:
        entities.job_spec = real_spec
        FakeShardProcessor.stats_dir = ""
        ray.shutdown()
    notes = [json.loads(p.read_text()) for p in sorted(stats_dir.glob("fake-*.json"))]
    stage_notes = [json.loads(p.read_text()) for p in sorted(stats_dir.glob("stage-*.json"))]
    split = sampler.by_role({int(n["pid"]) for n in notes})
    split["seconds"]["driver"] = (t_driver_end.user - t_driver.user) + (t_driver_end.system - t_driver.system)
    out = Path(report.get("config", {}).get("output", {}).get("path", cfg.output.path))
    run_json = json.loads((out / "run.json").read_text())
    shards = [json.loads(p.read_text()) for p in sorted((out / "stats").glob("part-*.json"))]
    return {"wall": wall, "run_json": run_json, "actors": notes, "stage_workers": stage_notes, "shard_stats": shards,
            "cpu": split,
            "run_json_mtime": (out / "run.json").stat().st_mtime, "started_at": started_at}


def steady_state(shards: list[dict]) -> tuple[float, float, int]:
    """Job words/s between the first and the last shard written (start-up and tail left out): the
    words of every shard after the first over that interval; (words/s, seconds, shards)."""
    done = sorted(shards, key=lambda s: s["finished_at"])
    if len(done) < 2:
        return float("nan"), 0.0, len(done)
    secs = done[-1]["finished_at"] - done[0]["finished_at"]
    return sum(int(s["words"]) for s in done[1:]) / secs, secs, len(done) - 1


# -- 4. the table --------------------------------------------------------------------------------
def table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def report(corpus: dict, ceiling: dict, job: dict, cores: int, actors: int, cpus_per_actor: float) -> tuple[str, dict]:
    rj = job["run_json"]
    this_run = rj["this_run"]
    job_words = int(this_run["words"])  # the job's own (tokenizer) words: to convert its rates
    per_ws = corpus["words"] / job_words if job_words else float("nan")  # whitespace words per job word
    job_ceiling = ceiling["per_core_wps"] * cores
    steady_jw, steady_s, steady_n = steady_state(job["shard_stats"])
    rates = {
        "whole job (call -> run.json written)": (corpus["words"] / job["wall"], job["wall"]),
        "run.json `this_run` (Ray start-up + shards, no planning/settling)": (corpus["words"] / this_run["seconds"],
                                                                            this_run["seconds"]),
        f"steady state ({steady_n} shards between the first and the last written)": (steady_jw * per_ws, steady_s),
    }
    cpu = job["cpu"]["seconds"]
    total_cpu = sum(cpu.values())
    actor_cpu = sum(a["process_cpu"] for a in job["actors"])
    forward = sum(a["forward_wall"] for a in job["actors"])
    rows = [
        ["corpus", f"{corpus['docs']:,} docs, {corpus['words']:,} words ({job_words:,} job words), "
                   f"{corpus['bytes'] / 1e6:.1f} MB, {this_run['shards']} shards", "", ""],
        ["CPU-stage ceiling, one core (prepare + finish)",
         f"{ceiling['per_core_wps']:,.0f} words/s/core: the mean of before the job "
         f"{ceiling['before_wps']:,.0f} and after it {ceiling['after_wps']:,.0f} (this machine's speed drifts; "
         f"before: prepare {ceiling['prepare_wps']:,.0f}, finish {ceiling['finish_wps']:,.0f}; "
         f"{ceiling['docs']:,} docs in {ceiling['shards']} shards)", "", ""],
        ["transport between the stages (not in the ceiling), one core",
         f"CPU tasks: {ceiling['cpu']['transport_cpu_tasks']:.2f} CPU-s (ceiling with it "
         f"{ceiling['per_core_wps_with_transport']:,.0f} words/s/core); model actor: "
         f"{ceiling['cpu']['transport_actor']:.2f} CPU-s = {ceiling['actor_wps_transport_only']:,.0f} words/s "
         f"on its one process ({ceiling['arrays_per_shard']:,.0f} arrays a shard)", "", ""],
        ["fake model's share of CPU, in-process",
         f"{100 * ceiling['forward_share']:.1f}% of prepare + model stage + finish (random logits alone "
         f"{100 * ceiling['forward_only_share']:.1f}%; the rest is the job's batching and slicing)", "", ""],
        ["cores counted for the CPU stages",
         f"{cores} (every core of the machine; {actors} model actor x "
         f"{cpus_per_actor} CPU, the driver and Ray's processes share them)", "", ""],
        ["ceiling for the job (per core x cores)", f"{job_ceiling:,.0f} words/s", "1.00", ""],
    ]
    result_rates = {}
    for name, (wps, secs) in rates.items():
        ratio = wps / job_ceiling
        result_rates[name] = {"words_per_s": wps, "seconds": secs, "ratio": ratio}
        rows.append([f"fake-model job, {name}", f"{wps:,.0f} words/s ({secs:.1f} s)", f"{ratio:.2f}",
                     "met" if ratio >= GOAL else "not met"])
    wall_cpu = job["wall"] * cores
    rows.append(["CPU used during the whole job (of wall x cores)",
                 f"{total_cpu:.1f} of {wall_cpu:.1f} CPU-s: CPU-stage workers {cpu['cpu_stage_workers']:.1f} "
                 f"({job['cpu']['processes']['cpu_stage_workers']} processes), model actor "
                 f"{cpu['model_actor']:.1f} (infer {sum(a['infer_cpu'] for a in job['actors']):.1f} CPU-s, of which "
                 f"random logits {forward:.1f} s wall; the rest: start-up and transport), driver {cpu['driver']:.1f}, "
                 "Ray's own "
                 f"processes {cpu['ray_processes']:.1f}", "", ""])
    t0 = job["started_at"]
    done = sorted(s["finished_at"] for s in job["shard_stats"])
    first_step = min((n["first_at"] for n in job["stage_workers"]), default=float("nan"))
    rows.append(["time line, seconds from the call",
                 f"first prepare began {first_step - t0:.1f} (planning, Ray's start, the actors' start-up); first "
                 f"shard written {done[0] - t0:.1f}; last {done[-1] - t0:.1f}; run.json written "
                 f"{job['run_json_mtime'] - t0:.1f} (duplicate ids settled, report merged)", "", ""])
    sw = job["stage_workers"]
    if sw:
        inside = sum(n["prepare_cpu"] + n["finish_cpu"] for n in sw)
        start = sum(n["startup_cpu"] for n in sw)
        rest = sum(n["process_cpu"] for n in sw) - inside - start
        rows.append(["CPU-stage workers that ran a step: where their CPU went",
                     f"{len(sw)} processes ({sum(n['prepare'] for n in sw)} prepare, {sum(n['finish'] for n in sw)} "
                     f"finish): inside prepare + finish {inside:.1f} CPU-s "
                     f"({corpus['words'] / inside:,.0f} words/CPU-s "
                     f"against the ceiling's {ceiling['per_core_wps']:,.0f}), start-up before the first step "
                     f"{start:.1f}, between the steps (transport, Ray Data's per-task work) {rest:.1f}", "", ""])
        # The same steps timed inside the job: a ceiling measured in the same minutes as the job, so
        # the machine's drift (tens of percent between minutes) cancels out. The ratio is the share of
        # the cores' time the job turns into CPU-stage work.
        in_job = corpus["words"] / inside
        for name in ("whole job (call -> run.json written)",
                     next(n for n in result_rates if n.startswith("steady state"))):
            ratio = result_rates[name]["words_per_s"] / (in_job * cores)
            result_rates[name]["ratio_to_in_job_steps"] = ratio
            rows.append([f"the same against the job's own steps ({in_job:,.0f} words/CPU-s x {cores} cores = "
                         f"{in_job * cores:,.0f}, no drift), {name.split(' (')[0]}",
                         f"{result_rates[name]['words_per_s']:,.0f} words/s", f"{ratio:.2f}",
                         "met" if ratio >= GOAL else "not met"])
    text = table(["quantity", "value", "ratio to the job's ceiling", f"goal >= {GOAL}"], rows)
    result = {"corpus": corpus, "ceiling": ceiling, "cores": cores, "job_ceiling_wps": job_ceiling,
              "rates": result_rates, "cpu": job["cpu"], "actors": job["actors"], "stage_workers": job["stage_workers"],
              "actor_process_cpu": actor_cpu,
              "whitespace_words_per_job_word": per_ws, "run_json_this_run": this_run,
              "run_json_wall_seconds": rj.get("wall_seconds")}
    return text, result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=30_000, help="records in the corpus (the sample, repeated)")
    ap.add_argument("--ceiling-shards", type=int, default=4, help="shards of the plan the ceiling is measured on")
    ap.add_argument("--actors", type=int, default=1, help="model actors (ray.num_actors); 1 = a GPU node's one")
    ap.add_argument("--cpus-per-actor", type=float, default=None, help="ray.cpus_per_actor (default: the config's)")
    ap.add_argument("--cores", type=int, default=0, help="cores counted for the CPU stages (0 = every usable core)")
    ap.add_argument("--out", default="", help="folder under runs/bench_pipeline/ (default: a new time stamp)")
    args = ap.parse_args(argv)
    out = OUT_ROOT / (args.out or time.strftime("%Y%m%d-%H%M%S"))
    if OUT_ROOT.resolve() not in out.resolve().parents or out.exists():
        raise SystemExit(f"--out must name a new folder under {OUT_ROOT}: {out}")
    out.mkdir(parents=True)
    cores = args.cores or len(os.sched_getaffinity(0))
    corpus_path = out / "corpus.jsonl"
    corpus = make_corpus(corpus_path, args.docs)
    cfg = job_config(corpus_path, out / "job", args.actors, args.cpus_per_actor)
    load0 = os.getloadavg()[0]
    ceiling = measure_ceiling(job_config(corpus_path, out / "ceiling", args.actors, args.cpus_per_actor),
                              out / "ceiling", args.ceiling_shards)
    import ray.data  # noqa: F401 - the driver's imports before the job's clock, as the CLI has them
    job = run_fake_job(cfg, out / "fake_actor")
    # The same measurement once more after the job: this machine's speed drifts by tens of percent
    # between minutes, so the job is compared with the mean of the two.
    after = measure_ceiling(job_config(corpus_path, out / "ceiling-after", args.actors, args.cpus_per_actor),
                            out / "ceiling-after", args.ceiling_shards)
    ceiling = both_ceilings(ceiling, after)
    text, result = report(corpus, ceiling, job, cores, args.actors, cfg.ray.cpus_per_actor)
    cmd = "python scripts/bench_pipeline.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    head = (f"`{cmd}`: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
            f"({len(os.sched_getaffinity(0))} usable), load average {load0:.2f} before the run, "
            f"{time.strftime('%Y-%m-%d')}")
    print(head + "\n\n" + text)
    (out / "table.md").write_text(head + "\n\n" + text + "\n", encoding="utf-8")
    (out / "result.json").write_text(json.dumps({**result, "command": cmd, "head": head}, indent=2, default=str))
    print(f"\nwritten: {out}/table.md, {out}/result.json")
    return result


if __name__ == "__main__":
    main()
