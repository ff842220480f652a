import numpy as np
import pytest
import torch

from rstn_core.engine.batching import crop_batch, fine_forward, paste_batch, zoom_in, zoom_out
from rstn_core.crop import Box
from rstn_core.engine.inference import WindowAccumulator
from rstn_core.views import average_windows, window_indices


def test_crop_paste_batch_roundtrip_inside_boxes_and_zero_outside():
    x = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).reshape(2, 3, 10, 12)
    boxes = [Box(1, 4, 2, 9), Box(5, 10, 0, 3)]
    canvas, valid = crop_batch(x, boxes, min_size=1)
    assert canvas.shape == (2, 3, 5, 7)                  # largest box height 5, width 7
    assert valid[0, 0].sum() == 3 * 7 and valid[1, 0].sum() == 5 * 3
    back = paste_batch(canvas, boxes, (10, 12))
    for b, box in enumerate(boxes):
        inside = torch.zeros(10, 12, dtype=torch.bool)
        inside[box.r0:box.r1, box.c0:box.c1] = True
        assert torch.equal(back[b][:, inside], x[b][:, inside])
        assert (back[b][:, ~inside] == 0).all()


def test_crop_batch_min_size_and_errors():
    x = torch.zeros(1, 3, 50, 50)
    canvas, _ = crop_batch(x, [Box(0, 5, 0, 5)], min_size=32)
    assert canvas.shape[-2:] == (32, 32)
    with pytest.raises(ValueError, match="None"):
        crop_batch(x, [None])
    with pytest.raises(ValueError, match="1 samples but 2 boxes"):
        crop_batch(x, [Box(0, 1, 0, 1)] * 2)


def test_zoom_out_inverts_zoom_in_on_constants_and_pools_exactly():
    x = torch.rand(2, 3, 8, 6)
    assert torch.allclose(zoom_out(zoom_in(torch.ones_like(x), 2), 2), torch.ones_like(x))
    z = torch.zeros(1, 1, 4, 4)
    z[0, 0, :2, :2] = 1
    assert zoom_out(z, 2)[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_paste_batch_is_differentiable():
    y = torch.rand(1, 3, 4, 4, requires_grad=True)
    paste_batch(y, [Box(2, 6, 3, 7)], (10, 10)).sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))


def test_fine_forward_sees_only_the_box():
    class Echo(torch.nn.Module):
        def forward(self, x):
            return 100 * (x - 0.5)
    x = torch.zeros(1, 3, 40, 40)
    x[..., 10:20, 10:20] = 1
    p, valid = fine_forward(Echo(), x, [Box(8, 22, 8, 22)], zoom=2)
    assert p.shape[-2:] == valid.shape[-2:] == (16, 16)    # ceil(32 / 2)
    assert torch.allclose(p[0, 0, 2:12, 2:12], torch.ones(10, 10), atol=1e-3)
    assert float(p[0, 0, 14:, :].sum()) == 0.0             # padding (box is 14 px) masked out


def test_window_accumulator_matches_views_average_windows():
    rng = np.random.default_rng(0)
    n, h, w = 7, 4, 5
    preds = rng.random((n, 3, h, w)).astype(np.float32)
    acc = WindowAccumulator(n, h, w)
    acc.add(np.arange(0, 4), preds[:4])
    acc.add(np.arange(4, n), preds[4:])
    np.testing.assert_allclose(acc.mean(), average_windows(preds), rtol=1e-6)
    assert window_indices(np.array([0, 4]), 5).tolist() == [[0, 0, 1], [3, 4, 4]]
