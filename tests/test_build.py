"""networks/build.py: the FCN-8s a config describes, with the same weights for the same seed."""
import torch

from rstn_core.config import get_config
from rstn_core.networks.build import build_net
from rstn_core.networks.fcn8s import FCN8s


def test_same_seed_same_weights_and_the_global_generator_untouched():
    cfg = get_config("smoke", **{"model.pretrained": "none"})
    state = torch.random.get_rng_state()
    a, b = build_net(cfg), build_net(cfg)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert isinstance(a, FCN8s) and a.fc6.weight.shape[-1] == cfg.model.fc_kernel
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = build_net(cfg.replace(seed=cfg.seed + 1))
    assert not torch.equal(a.fc6.weight, c.fc6.weight)
