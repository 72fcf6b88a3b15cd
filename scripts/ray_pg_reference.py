# Ray 2.60 reference for placement_group_create/removal (docs/benchmarks.md): ray_perf.py lines 297-320 alone.
import ray
from ray._private.ray_microbenchmark_helpers import timeit
NUM_PGS = 100
ray.init(resources={"custom": 100}, include_dashboard=False)
def placement_group_create_removal(num_pgs):
    pgs = [ray.util.placement_group(bundles=[{"custom": 0.001}]) for _ in range(num_pgs)]
    [pg.wait(timeout_seconds=30) for pg in pgs]
    for pg in pgs:
        ray.util.remove_placement_group(pg)
for _ in range(2):
    print(timeit("placement group create/removal", lambda: placement_group_create_removal(NUM_PGS), NUM_PGS), flush=True)
ray.shutdown()
