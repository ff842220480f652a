"""engine/inference.py's speed options (channels_last, prepare_net) must not change results.
Pending: this test moves into tests/test_inference.py once that file is free (another change
is editing it); the other speed tests now sit in test_rstn_model, test_loader, test_fold_runner."""

import numpy as np
import torch

from rstn_core.networks.fcn8s import FCN8s


def test_inference_options_keep_the_probabilities_on_cpu():
    from rstn_core.engine.inference import coarse_probability, prepare_net
    torch.manual_seed(0)
    net = FCN8s(3, 3, width=1 / 32, fc_kernel=3).eval()
    with torch.no_grad():
        net.score_fr.weight.normal_(0, 0.3)
    vol = np.random.default_rng(0).random((40, 36, 6)).astype(np.float32)
    ref = coarse_probability(net, vol, "axial", 4)
    assert prepare_net(net, "cpu", channels_last=True) is net   # CUDA only: a no-op on CPU
    assert net.fc6.weight.is_contiguous()
    np.testing.assert_array_equal(
        coarse_probability(net, vol, "axial", 4, channels_last=True), ref)


