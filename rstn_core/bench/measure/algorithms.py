"""Algorithm 1 and Algorithm 2 on one volume with *oracle* nets (measurement 2).

Every net is built from the config (untrained) and wrapped in `Replay`: it runs its real
forward pass on the real input (so the cost is the real one), then its output is replaced by
the label. So Z(0) is the label, every round's boxes are the label's boxes + margin and
Z(t) = Z(t-1): each round costs what a round of a converged run with trained nets costs.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from rstn_core.algorithms.rstn import RSTNModels, rstn_predict
from rstn_core.algorithms.rstn_model import build_rstn
from rstn_core.algorithms.stepwise import StepwiseNets, fixed_point_predict
from rstn_core.bench.timing import sync
from rstn_core.config import scaled_px
from rstn_core.crop import bbox
from rstn_core.data import target_mask
from rstn_core.engine.batching import crop_batch
from rstn_core.engine.inference import prepare_net
from rstn_core.fusion import keep_large_components
from rstn_core.metrics import dsc
from rstn_core.networks.build import build_net
from rstn_core.views import to_view, window_indices

__all__ = ["Replay", "bench_algorithms", "oracle_label", "oracle_rstn_models"]


class Replay(nn.Module):
    """Runs the real net on its input, then returns logits replayed from a precomputed
    sequence: +20 on the label, -20 elsewhere.

    The sequence lists, in the order `inference.coarse_probability` / `fine_probability`
    visit them, the label of every batch that net will see when the reference map is the
    label itself. A call whose output shape does not match is counted in `mismatches` and
    returns the net's own logits (the benchmark then reports ``oracle_ok: false``).

    Args:
        net: the real net; outputs: the label batches; device: where they run;
        compile, channels_last: the inference speed options for the real net.
    """

    def __init__(self, net: nn.Module, outputs: list, device: str, compile: bool = False,
                 channels_last: bool = False):
        super().__init__()
        self.net = net
        self.run = prepare_net(net, device, channels_last, compile)
        self.outputs = outputs
        self.device_ = device
        self.calls = self.mismatches = 0
        self.seconds = 0.0

    def reset(self):
        """Zero the call, mismatch and time counters."""
        self.calls = self.mismatches = 0
        self.seconds = 0.0

    def forward(self, x):
        """The real net's forward pass on x (timed), then the replayed label logits."""
        t0 = time.perf_counter()
        out = self.run(x)
        sync(self.device_)
        self.seconds += time.perf_counter() - t0
        want = self.outputs[self.calls % len(self.outputs)]
        self.calls += 1
        if tuple(want.shape) != tuple(out.shape):
            self.mismatches += 1
            return out
        return want.to(out.dtype) * 40 - 20                          # label -> logits +-20


def _coarse_sequence(label: np.ndarray, view: str, batch_size: int, device) -> list:
    """The label windows of each batch `coarse_probability` runs, uint8 on `device`."""
    lab_v = to_view(label, view).astype(np.uint8)
    n = len(lab_v)
    return [torch.from_numpy(np.ascontiguousarray(
        lab_v[window_indices(np.arange(s, min(s + batch_size, n)), n)])).to(device)
        for s in range(0, n, batch_size)]


def _fine_sequence(label: np.ndarray, view: str, margin: int, zoom: int, batch_size: int,
                   device) -> list:
    """The label canvases of each batch `fine_probability` runs when its reference map is the
    label: boxes of the label + margin, crops on the batch's canvas, zoomed (nearest)."""
    lab_v = to_view(label, view).astype(np.uint8)
    n = len(lab_v)
    idx = window_indices(np.arange(n), n)
    boxes = [bbox(lab_v[i] > 0, margin) for i in idx]
    todo = [j for j in range(n) if boxes[j] is not None]
    out = []
    for s in range(0, len(todo), batch_size):
        c = np.array(todo[s:s + batch_size])
        y = torch.from_numpy(np.ascontiguousarray(lab_v[window_indices(c, n)]))
        canvas, _ = crop_batch(y, [boxes[j] for j in c], min_size=-(-32 // zoom))
        if zoom > 1:
            canvas = canvas.repeat_interleave(zoom, -2).repeat_interleave(zoom, -1)
        out.append(canvas.to(device))
    return out


def oracle_label(cfg, case) -> np.ndarray:
    """The case's target mask, as the oracle nets replay it (large components only when the
    config keeps only those, so that keeping them changes nothing)."""
    lab = target_mask(case, cfg.target)
    if cfg.test.coarse_components:
        lab = keep_large_components(lab)
    return lab


def oracle_rstn_models(cfg, lab: np.ndarray, device: str, make_net=None,
                       compile: bool = False, channels_last: bool = False):
    """One RSTN per view of `cfg` (`build_rstn`: saliency, margin, zoom) whose coarse and fine
    nets are :class:`Replay` wrappers replaying `lab`.

    Args:
        cfg: the Config (views, test batch and settings); lab: the label replayed;
        make_net: builds the nets instead of the config's FCN-8s (e.g. the authors'
        architecture); compile, channels_last: the inference speed options.
    Returns:
        (RSTNModels, {view: coarse Replay}, {view: fine Replay}).
    """
    bs, opts = cfg.test.batch_size, {"compile": compile, "channels_last": channels_last}
    models = {}
    for v in cfg.views:
        m = build_rstn(cfg).to(device)
        coarse = m.coarse if make_net is None else make_net().to(device)
        fine = m.fine if make_net is None else make_net().to(device)
        m.coarse = Replay(coarse, _coarse_sequence(lab, v, bs, device), device, **opts)
        m.fine = Replay(fine, _fine_sequence(lab, v, m.margin, m.zoom, bs, device), device,
                        **opts)
        models[v] = m
    rm = RSTNModels(models, batch_size=bs, device=device,
                    coarse_components=cfg.test.coarse_components, amp=cfg.test.amp,
                    channels_last=channels_last)
    return rm, {v: m.coarse for v, m in models.items()}, {v: m.fine for v, m in models.items()}


def bench_algorithms(cfg, case, device: str, T: int, compile: bool = False,
                     channels_last: bool = False) -> dict:
    """Algorithm 1 (R=None) and Algorithm 2 (thr=None) on one volume, T rounds, oracle nets.

    What is timed is the library's `fixed_point_predict` / `rstn_predict` call, end to end
    (windowing, stacking, cropping, pasting, fusion, DSC).

    Returns:
        {"stepwise": ..., "rstn": ...}: seconds, rounds, windows, net seconds, oracle_ok.
    """
    if T < 1:
        raise ValueError(f"bench_algorithms: T={T}; need at least one round (T >= 1).")
    opts = {"compile": compile, "channels_last": channels_last}
    lab = oracle_label(cfg, case)
    views = list(cfg.views)
    bs, zoom = cfg.test.batch_size, cfg.train.zoom
    n_coarse = sum(to_view(case.image, v).shape[0] for v in views)
    out = {}

    # Algorithm 1: six FCN-8s.
    margin = scaled_px(cfg.test.fixed_point_margin, cfg.slice_size)   # as load_stepwise
    coarse = {v: Replay(build_net(cfg), _coarse_sequence(lab, v, bs, device), device, **opts)
              for v in views}
    fine = {v: Replay(build_net(cfg), _fine_sequence(lab, v, margin, zoom, bs, device), device,
                      **opts) for v in views}
    nets = StepwiseNets(coarse, fine, margin=margin, zoom=zoom, batch_size=bs, device=device,
                        coarse_components=cfg.test.coarse_components, amp=cfg.test.amp,
                        channels_last=channels_last)
    out["stepwise"] = _run_algorithm(
        lambda: fixed_point_predict(case.image, nets, R=None, T=T), coarse, fine, lab, T,
        n_coarse, device)
    out["stepwise"]["margin"] = margin

    # Algorithm 2: one RSTN per view (coarse + fine FCN-8s + saliency).
    rm, rc, rf = oracle_rstn_models(cfg, lab, device, **opts)
    out["rstn"] = _run_algorithm(lambda: rstn_predict(case.image, rm, thr=None, T=T),
                                 rc, rf, lab, T, n_coarse, device)
    out["rstn"]["margin"] = {v: m.margin for v, m in rm.models.items()}
    for v in out:
        out[v].update(T=T, batch_size=bs, zoom=zoom)
    return out


def _run_algorithm(call, coarse, fine, lab, T, n_coarse, device) -> dict:
    nets = list(coarse.values()) + list(fine.values())
    with torch.inference_mode():                                       # warm-up: first calls
        for r in coarse.values():                                     # pay one-off set-up costs
            r(torch.zeros(1, 3, 64, 64, device=device))
    for r in nets:
        r.reset()
    sync(device)
    t0 = time.perf_counter()
    res = call()
    sync(device)
    seconds = time.perf_counter() - t0
    coarse_s = sum(r.seconds for r in coarse.values())
    fine_s = sum(r.seconds for r in fine.values())
    ok = (not any(r.mismatches for r in nets) and all(d == 1.0 for d in res.d)
          and dsc(res.final, lab) == 1.0                            # Z(t) = label throughout
          and all(r.calls == len(r.outputs) for r in coarse.values())          # one pass
          and all(r.calls == T * len(r.outputs) for r in fine.values()))       # T passes
    windows = [int(n) for n in res.windows_run]
    return {"seconds": seconds, "rounds": len(res.d), "windows_coarse": n_coarse,
            "windows_fine_per_round": windows, "windows_total": n_coarse + sum(windows),
            "net_seconds_coarse": coarse_s, "net_seconds_fine": fine_s,
            "net_seconds_fine_per_round": fine_s / max(1, len(res.d)),
            "other_seconds": seconds - coarse_s - fine_s,
            "forward_calls": sum(r.calls for r in nets),
            "oracle_ok": bool(ok), "label_voxels": int(lab.sum())}
