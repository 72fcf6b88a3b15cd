#!/usr/bin/env python3
"""Jobs API figures, measured the same way against any server that speaks Ray's Jobs REST API
(Ray 2.60's dashboard or swift-ray's), with the standard library only.

job_submit_to_running_ms: from just before `POST /api/jobs/` to the moment the entrypoint's first
line was written (the entrypoint is `date +%s%N`, so the line carries its own timestamp; the
client polls `/api/jobs/{id}/logs` until it appears). The first job of a fresh cluster is reported
apart from the rest (Ray starts its JobSupervisor machinery then).

ray_job_submit_echo_s: wall time of Ray's own CLI, `ray job submit --address URL -- echo hi`
(start-up of the Python CLI included), when --ray-cli is given.

Usage: jobs_benchmark.py --address http://127.0.0.1:8265 [--jobs 20] [--ray-cli PATH] [--label NAME]
"""
import argparse
import json
import os
import statistics
import subprocess
import time
import urllib.request


def call(address, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(address + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


def submit_to_first_line(address):
    start = time.time_ns()
    job = call(address, "POST", "/api/jobs/", {"entrypoint": "date +%s%N", "runtime_env": {}, "metadata": {}})
    job_id = job["submission_id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        logs = call(address, "GET", f"/api/jobs/{job_id}/logs")["logs"]
        # Ray writes lines of its own into the log too ("Runtime env is setting up."): the
        # entrypoint's line is the one that is a number.
        stamps = [line.strip() for line in logs.split("\n") if line.strip().isdigit()]
        if stamps:
            return (int(stamps[0]) - start) / 1e6, job_id
        time.sleep(0.002)
    raise RuntimeError(f"job {job_id} wrote nothing within 60 s")


def wait_ended(address, job_id):
    deadline = time.time() + 60
    while time.time() < deadline:
        if call(address, "GET", f"/api/jobs/{job_id}")["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
            return
        time.sleep(0.01)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--ray-cli")
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    first, first_id = submit_to_first_line(args.address)
    wait_ended(args.address, first_id)
    rest = []
    for _ in range(args.jobs):
        latency, job_id = submit_to_first_line(args.address)
        wait_ended(args.address, job_id)
        rest.append(latency)
    result = {
        "label": args.label,
        "job_submit_to_running_ms_first": round(first, 1),
        "job_submit_to_running_ms_median": round(statistics.median(rest), 1),
        "job_submit_to_running_ms_min": round(min(rest), 1),
        "job_submit_to_running_ms_max": round(max(rest), 1),
        "jobs": args.jobs,
    }
    if args.ray_cli:
        env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
        env.pop("RAY_ADDRESS", None)
        env.pop("RAY_API_SERVER_ADDRESS", None)
        times = []
        for _ in range(args.cli_runs):
            start = time.time()
            out = subprocess.run([args.ray_cli, "job", "submit", "--address", args.address, "--", "echo", "hi"],
                                 env=env, capture_output=True, text=True, timeout=120)
            times.append(time.time() - start)
            if out.returncode != 0 or "hi" not in out.stdout + out.stderr:
                raise RuntimeError(f"ray job submit failed: {out.stdout}{out.stderr}")
        result["ray_job_submit_echo_s_median"] = round(statistics.median(times), 2)
        result["ray_job_submit_echo_s_min"] = round(min(times), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
