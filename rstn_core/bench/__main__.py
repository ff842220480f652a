"""`python -m rstn_core.bench ...`: the same arguments as `rstn bench` (and the entry point
of the training workers, which run in fresh subprocesses)."""
import sys

from rstn_core.bench import bench_main

if __name__ == "__main__":
    sys.exit(bench_main())
