#!/usr/bin/env python3
"""Ray's own figures for the metrics ray-microbenchmark prints, measured on this machine.

Run with a Ray installed outside the checkout, e.g.:
    python3 -m venv /work/ray-venv && /work/ray-venv/bin/pip install "ray[default]==2.60.0"
    RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 /work/ray-venv/bin/python scripts/ray_reference_benchmark.py --json ray.json

The task and object figures use Ray's `timeit` (ray._private.ray_microbenchmark_helpers: 1 s warm-up,
then the mean of 4 runs of 2 s) on the same workloads as `ray microbenchmark`; get_gigabytes gets the
800 MB array that put_gigabytes puts. cold_start_ms is a fresh Python process from start to its first
task result (ray.init() included), median of 3. idle_cluster_pss_mib is the PSS of every process of a
`ray start --head --num-cpus 2` cluster, idle, after a driver ran tasks on its 2 workers (the driver
excluded). idle_cluster_cpu_percent is the CPU time (user + system) the same cluster's processes use
over 60 s while a driver stays connected with its 2 workers idle, as a share of one core (the driver
excluded).
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import ray
from ray._private.ray_microbenchmark_helpers import timeit


@ray.remote
def small_value():
    return b"ok"


@ray.remote(num_cpus=0)
class Client:
    def small_value_batch(self, n):
        ray.get([small_value.remote() for _ in range(n)])


# The actor figures, as ray_perf.py (ray microbenchmark) defines them.
@ray.remote(num_cpus=0)
class Actor:
    def small_value(self):
        return b"ok"


@ray.remote
class AsyncActor:
    async def small_value(self):
        return b"ok"


@ray.remote(num_cpus=0)
class ActorClient:
    def __init__(self, servers):
        self.servers = servers

    def small_value_batch(self, n):
        results = []
        for s in self.servers:
            results.extend([s.small_value.remote() for _ in range(n)])
        ray.get(results)


@ray.remote
def actor_work(actors, n):
    ray.get([actors[i % len(actors)].small_value.remote() for i in range(n)])


def actor_figures(record, wanted=lambda name: True):
    n_cpu = max(1, os.cpu_count() // 2)
    if wanted("1_1_actor_calls_sync"):
        a = Actor.remote()
        record("1_1_actor_calls_sync", timeit("1:1 actor calls sync", lambda: ray.get(a.small_value.remote())))
    if wanted("1_1_actor_calls_async"):
        a = Actor.remote()
        record("1_1_actor_calls_async", timeit(
            "1:1 actor calls async", lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000))
    if wanted("1_1_actor_calls_concurrent"):
        a = Actor.options(max_concurrency=16).remote()
        record("1_1_actor_calls_concurrent", timeit(
            "1:1 actor calls concurrent", lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000))
    n = 5000
    if wanted("1_n_actor_calls_async"):
        servers = [Actor.remote() for _ in range(n_cpu)]
        client = ActorClient.remote(servers)
        record("1_n_actor_calls_async", timeit(
            "1:n actor calls async", lambda: ray.get(client.small_value_batch.remote(n)), n * len(servers)))
    m = 4
    if wanted("n_n_actor_calls_async"):
        actors = [Actor.remote() for _ in range(n_cpu)]
        record("n_n_actor_calls_async", timeit(
            "n:n actor calls async", lambda: ray.get([actor_work.remote(actors, n) for _ in range(m)]), m * n))
    if wanted("1_1_async_actor_calls_sync"):
        a = AsyncActor.remote()
        record("1_1_async_actor_calls_sync", timeit("1:1 async-actor calls sync", lambda: ray.get(a.small_value.remote())))
    if wanted("1_1_async_actor_calls_async"):
        a = AsyncActor.remote()
        record("1_1_async_actor_calls_async", timeit(
            "1:1 async-actor calls async", lambda: ray.get([a.small_value.remote() for _ in range(1000)]), 1000))


def task_and_object_figures():
    ray.init()
    figures = {}

    def record(name, results):
        figures[name] = results[0][1]

    value = ray.put(0)
    record("single_client_get_calls", timeit("single client get calls", lambda: ray.get(value), warmup_time_sec=2))
    record("single_client_put_calls", timeit("single client put calls", lambda: ray.put(0), warmup_time_sec=2))
    arr = np.zeros(100 * 1024 * 1024, dtype=np.int64)
    record("single_client_put_gigabytes", timeit("single client put gigabytes", lambda: ray.put(arr), 8 * 0.1, warmup_time_sec=2))
    big = ray.put(arr)
    record("single_client_get_gigabytes", timeit("single client get gigabytes", lambda: ray.get(big), 8 * 0.1, warmup_time_sec=2))

    def batch():
        ray.get([small_value.remote() for _ in range(1000)])

    record("single_client_tasks_and_get_batch", timeit("single client tasks and get batch", batch, warmup_time_sec=2))

    def wait_1k():
        not_ready = [small_value.remote() for _ in range(1000)]
        for _ in range(1000):
            _, not_ready = ray.wait(not_ready)

    record("single_client_wait_1k_refs", timeit("single client wait 1k refs", wait_1k, warmup_time_sec=2))
    record("single_client_tasks_sync", timeit("single client tasks sync", lambda: ray.get(small_value.remote()), warmup_time_sec=2))
    record("single_client_tasks_async", timeit("single client tasks async", batch, 1000, warmup_time_sec=2))
    n, m = 10000, 4
    clients = [Client.remote() for _ in range(m)]
    record("multi_client_tasks_async", timeit(
        "multi client tasks async", lambda: ray.get([c.small_value_batch.remote(n) for c in clients]), n * m,
        warmup_time_sec=2))
    actor_figures(record)
    ray.shutdown()
    return figures


COLD_START = """
import time, ray
ray.init()
@ray.remote
def f():
    return 1
ray.get(f.remote())
print("first-result", flush=True)
"""


def cold_start_ms():
    times = []
    for _ in range(3):
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", COLD_START], stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            if "first-result" in line:
                times.append((time.perf_counter() - start) * 1000)
                break
        process.wait()
    return sorted(times)[len(times) // 2]


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cluster_processes(exclude):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ray" in cmdline and ("/ray/" in cmdline or "ray::" in cmdline or "gcs_server" in cmdline or "raylet" in cmdline):
            found.append(int(entry))
    return found


@contextlib.contextmanager
def idle_cluster(port, disconnect):
    """A `ray start --head --num-cpus 2` cluster whose 2 workers a driver started (and, with
    `disconnect`, left); yields the processes that are new since before it started (the driver
    excluded)."""
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    before = set(cluster_processes(exclude=set()))
    subprocess.run([ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(port)], check=True, capture_output=True)
    try:
        ray.init(address=f"127.0.0.1:{port}")

        @ray.remote
        def pid():
            return os.getpid()

        workers = set()
        deadline = time.time() + 30
        while len(workers) < 2 and time.time() < deadline:
            workers |= set(ray.get([pid.remote() for _ in range(50)]))
        if disconnect:
            ray.shutdown()
        time.sleep(2)
        yield [p for p in cluster_processes(exclude={os.getpid()}) if p not in before]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True)


def idle_cluster_pss_mib():
    with idle_cluster(6390, disconnect=True) as processes:
        return sum(pss_kib(p) for p in processes) / 1024


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def idle_cluster_cpu_percent(seconds=60):
    with idle_cluster(6391, disconnect=False) as processes:
        start = {p: cpu_ticks(p) for p in processes}
        time.sleep(seconds)
        used = sum(max(0, cpu_ticks(p) - start[p]) for p in processes)
        return used / (os.sysconf("SC_CLK_TCK") * seconds) * 100


def cross_node_figures(transfers=6):
    """cross_node_transfer_1gib_gbps as ray-multinode-benchmark measures it: a 1 GiB array made by a
    task on another node (NodeAffinity), waited for, then timed `ray.get` by this driver (whose node
    is RAY_NODE_IP_ADDRESS)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    ray.init(address=os.environ["RAY_ADDRESS"], _node_ip_address=os.environ.get("RAY_NODE_IP_ADDRESS"))
    here = ray.get_runtime_context().get_node_id()
    other = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != here)

    @ray.remote(num_cpus=0)
    def make_bytes(size):
        return np.zeros(size, dtype=np.uint8)

    size = 1 << 30
    gbps = []
    for _ in range(transfers):
        made = make_bytes.options(scheduling_strategy=NodeAffinitySchedulingStrategy(other, soft=False)).remote(size)
        ray.wait([made], timeout=120, fetch_local=False)
        start = time.perf_counter()
        value = ray.get(made)
        elapsed = time.perf_counter() - start
        assert value.nbytes == size
        del value, made
        gbps.append(size / elapsed / 1e9)
    rest = sorted(gbps[1:])
    figures = {"cross_node_transfer_1gib_gbps_first": gbps[0], "cross_node_transfer_1gib_gbps": rest[len(rest) // 2],
               "cross_node_transfer_1gib_gbps_best": rest[-1]}
    print("transfers_gbps: " + " ".join(f"{x:.2f}" for x in gbps))
    ray.shutdown()
    return figures


def tasks_async_on(address):
    """single_client_tasks_async against a running cluster (multi_node_tasks_async on a multi-node one)."""
    ray.init(address=address, _node_ip_address=os.environ.get("RAY_NODE_IP_ADDRESS"))

    def batch():
        ray.get([small_value.remote() for _ in range(1000)])

    results = timeit("multi node tasks async", batch, 1000, warmup_time_sec=2)
    ray.shutdown()
    return {"multi_node_tasks_async": results[0][1]}


def broadcast_figures():
    """broadcast_1gib_to_3_nodes_s: a 1 GiB array put by this driver, read by a task on each of three
    other nodes (NodeAffinity), on the cluster at RAY_ADDRESS."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    ray.init(address=os.environ["RAY_ADDRESS"], _node_ip_address=os.environ.get("RAY_NODE_IP_ADDRESS"))
    here = ray.get_runtime_context().get_node_id()
    others = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != here][:3]
    assert len(others) == 3, "needs four nodes"

    @ray.remote(num_cpus=0)
    def byte_count(array):
        return array.nbytes

    big = ray.put(np.ones(1 << 30, dtype=np.uint8))
    start = time.perf_counter()
    counts = ray.get([byte_count.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(big)
                      for n in others])
    assert counts == [1 << 30] * 3
    figures = {"broadcast_1gib_to_3_nodes_s": time.perf_counter() - start}
    ray.shutdown()
    return figures


def scalability_figures(only=None):
    """ray-scalability's figures as Ray's release/benchmarks/single_node/test_single_node.py runs them
    (its sizes and steps), on a local cluster. SCALABILITY_TASKS scales the queued-tasks figure down:
    Ray's 1,000,000 does not finish within 10 minutes on this machine. Its CPUs are held by tasks
    blocked on Ray's test Semaphore actor until every task is submitted, as in Ray's test."""
    ray.init()
    figures = {}

    @ray.remote
    def sum_args(*args):
        return sum(sum(arg) for arg in args)

    @ray.remote(num_returns=3000)
    def many_returns():
        return tuple(list(range(10000)) for _ in range(3000))

    from ray._common.test_utils import Semaphore  # what Ray's own test blocks on

    @ray.remote(num_cpus=1)
    def block(sema):
        ray.get(sema.acquire.remote())

    @ray.remote(num_cpus=1)
    def f():
        pass

    def wanted(name):
        return only is None or only in name

    if wanted("10000_args_to_one_task_s"):
        start = time.perf_counter()
        args = [[1 for _ in range(10000)] for _ in range(10000)]
        assert ray.get(sum_args.remote(*args)) == 10000 * 10000
        figures["10000_args_to_one_task_s"] = time.perf_counter() - start
    if wanted("3000_returns_from_one_task_s"):
        start = time.perf_counter()
        refs = many_returns.remote()
        for ref in refs:
            assert ray.get(ref) == list(range(10000))
        figures["3000_returns_from_one_task_s"] = time.perf_counter() - start
    if wanted("get_10000_objects_s"):
        start = time.perf_counter()
        refs = [ray.put(list(range(10000))) for _ in range(10000)]
        results = ray.get(refs)
        assert all(obj == list(range(10000)) for obj in results)
        refs = [ray.put(np.arange(10000)) for _ in range(10000)]
        results = ray.get(refs)
        assert all((obj == np.arange(10000)).all() for obj in results)
        figures["get_10000_objects_s"] = time.perf_counter() - start
    if only is not None and "tasks_queued" in only:
        n = int(os.environ.get("SCALABILITY_TASKS", "1000000"))
        sema = Semaphore.remote(0)
        ray.get(sema.locked.remote())
        start = time.perf_counter()
        blocked = [block.remote(sema) for _ in range(int(ray.cluster_resources()["CPU"]))]
        pending = [f.remote() for _ in range(n)]
        for _ in blocked:
            sema.release.remote()
        for ref in pending:
            assert ray.get(ref) is None
        ray.get(blocked)
        figures[f"{n}_tasks_queued_s"] = time.perf_counter() - start
    ray.shutdown()
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--broadcast", action="store_true", help="broadcast_1gib_to_3_nodes_s on the cluster at RAY_ADDRESS")
    parser.add_argument("--scalability", action="store_true", help="ray-scalability's figures (10000 args, get 10000; --only tasks_queued for 1M tasks)")
    parser.add_argument("--cross-node", action="store_true", help="cross_node_transfer_1gib_gbps on the cluster at RAY_ADDRESS")
    parser.add_argument("--address", help="with --only tasks_async: the cluster to run single_client_tasks_async on")
    parser.add_argument("--json")
    parser.add_argument("--only-actors", action="store_true", help="only the actor figures")
    parser.add_argument("--only", help="with --only-actors: only the actor figures whose names contain this")
    parser.add_argument("--only-idle-cpu", action="store_true", help="only idle_cluster_cpu_percent")
    args = parser.parse_args()
    if args.scalability or args.broadcast:
        for name, value in (broadcast_figures() if args.broadcast else scalability_figures(args.only)).items():
            print(f"{name}: {value:.3f}")
        return
    if args.cross_node or (args.address and args.only == "tasks_async"):
        figures = cross_node_figures() if args.cross_node else tasks_async_on(args.address)
        for name, value in figures.items():
            print(f"{name}: {value:.2f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2, sort_keys=True)
        return
    if args.only_actors:
        ray.init()
        figures = {}
        actor_figures(lambda name, results: figures.__setitem__(name, results[0][1]),
                      lambda name: args.only is None or args.only in name)
        ray.shutdown()
        for name, value in figures.items():
            print(f"{name}: {value:.2f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2, sort_keys=True)
        return
    if args.only_idle_cpu:
        print(f"idle_cluster_cpu_percent: {idle_cluster_cpu_percent():.2f}")
        return
    figures = task_and_object_figures()
    figures["cold_start_ms"] = cold_start_ms()
    figures["idle_cluster_pss_mib"] = idle_cluster_pss_mib()
    figures["idle_cluster_cpu_percent"] = idle_cluster_cpu_percent()
    for name, value in figures.items():
        print(f"{name}: {value:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
