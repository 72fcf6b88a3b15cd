#!/usr/bin/env python3
"""api_v0_tasks_10k_ms: the time to list 10,000 tasks through the state API (`GET /api/v0/tasks?limit=10000`),
measured the same way against any server that speaks it. Once the cluster knows of at least --tasks
tasks (polled with limit=1), the listing is timed --runs times; the median and min are printed.

--ray-driver: submit the tasks from a Python Ray driver first (for Ray; swift-ray's are submitted by
the Swift driver before this runs).

Usage: tasks_listing_benchmark.py --address http://127.0.0.1:8265 [--tasks 10000] [--runs 5] [--ray-driver GCS]
"""
import argparse
import json
import statistics
import time
import urllib.request


def get(address, path):
    with urllib.request.urlopen(address + path, timeout=120) as reply:
        return json.loads(reply.read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ray-driver")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    if args.ray_driver:
        import ray
        ray.init(address=args.ray_driver)

        @ray.remote
        def square(x):
            return x * x

        assert sum(ray.get([square.remote(i) for i in range(args.tasks)])) == sum(i * i for i in range(args.tasks))
    deadline = time.time() + 120
    while True:
        total = get(args.address, "/api/v0/tasks?limit=1&detail=false")["data"]["result"]["total"]
        if total >= args.tasks:
            break
        if time.time() > deadline:
            raise RuntimeError(f"the state API knows of {total} tasks after 120 s")
        time.sleep(0.2)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        reply = get(args.address, f"/api/v0/tasks?limit={args.tasks}&detail=false&timeout=30")
        times.append((time.perf_counter() - start) * 1000)
        rows = len(reply["data"]["result"]["result"])
        if rows != args.tasks:
            raise RuntimeError(f"listed {rows} tasks, expected {args.tasks}")
    print(json.dumps({"label": args.label, "api_v0_tasks_10k_ms_median": round(statistics.median(times), 1),
                      "api_v0_tasks_10k_ms_min": round(min(times), 1), "tasks_known": total, "runs": args.runs}))


if __name__ == "__main__":
    main()
