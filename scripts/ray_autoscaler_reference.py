# Ray 2.60 reference for autoscaler_scale_up_s / scale_down_s (docs/benchmarks.md): run against a head
# started with RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config scripts/ray_fake_multinode.yaml.
import time, ray
ray.init(address="auto")
@ray.remote(num_cpus=1, resources={"accel": 1})
def where():
    return ray.get_runtime_context().get_node_id()
def accel_nodes():
    return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("accel"))
for run in range(3):
    t = time.time()
    ray.get(where.remote(), timeout=300)
    up = time.time() - t
    done = time.time()
    while accel_nodes() > 0:
        if time.time() - done > 600: break
        time.sleep(0.05)
    down = time.time() - done - 3.0
    print(f"run {run+1}: ray autoscaler_scale_up_s {up:.3f}  autoscaler_scale_down_s {down:.3f} (after the 3 s idle timeout)", flush=True)
