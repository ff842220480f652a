"""The benchmark's measurements: net inference speed, the two algorithms on one volume with
oracle nets, and RSTN training speed and memory."""
from rstn_core.bench.measure.algorithms import Replay, bench_algorithms, oracle_label
from rstn_core.bench.measure.nets import (
                                          BATCHES,
                                          FULL_WIDTH_BATCHES,
                                          FULL_WIDTH_SIZES,
                                          bench_batched,
                                          bench_cpu_options,
                                          bench_forward,
                                          bench_full_width,
                                          randomise_scores,
)
from rstn_core.bench.measure.volumes import bench_scaling, bench_slab, fit_exponent
from rstn_core.bench.measure.training import (
                                          QUICK_TRAIN_T,
                                          TRAIN_T,
                                          WORKER_MARK,
                                          bench_config,
                                          bench_training,
                                          rstn_step,
                                          stepwise_step,
                                          train_worker,
                                          training_batch,
)

__all__ = [
                                          "BATCHES",
                                          "FULL_WIDTH_BATCHES",
                                          "FULL_WIDTH_SIZES",
                                          "QUICK_TRAIN_T",
                                          "TRAIN_T",
                                          "WORKER_MARK",
                                          "Replay",
                                          "bench_algorithms",
                                          "bench_batched",
                                          "bench_config",
                                          "bench_cpu_options",
                                          "bench_forward",
                                          "bench_full_width",
                                          "bench_scaling",
                                          "bench_slab",
                                          "bench_training",
                                          "fit_exponent",
                                          "oracle_label",
                                          "randomise_scores",
                                          "rstn_step",
                                          "stepwise_step",
                                          "train_worker",
                                          "training_batch",
]
