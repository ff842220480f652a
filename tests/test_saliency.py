"""Tests of rstn_core.saliency: initial behaviour, locality of g(P), gradients, errors."""

import pytest
import torch
import torch.nn as nn

from rstn_core.losses import soft_dsc_loss
from rstn_core.saliency import SaliencyTransform

torch.set_num_threads(2)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_structure(layers, k):
    st = SaliencyTransform(kernel_size=k, layers=layers)
    convs = [m for m in st.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == layers
    for conv in convs:
        assert (conv.in_channels, conv.out_channels) == (3, 3)
        assert conv.kernel_size == (k, k) and conv.padding == (k // 2, k // 2)
    assert sum(isinstance(m, nn.ReLU) for m in st.modules()) == layers - 1


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_starts_as_identity(layers, k):
    st = SaliencyTransform(kernel_size=k, layers=layers)
    p, x = torch.rand(2, 3, 17, 23), torch.randn(2, 3, 17, 23)
    assert torch.equal(st.weights(p), torch.ones(2, 3, 17, 23))  # g(P) = 1 whatever P
    assert torch.equal(st(x, p), x)  # the fine net first sees the plain image


def test_authors_init_scale_is_a_per_channel_scaling():
    st = SaliencyTransform(kernel_size=5, layers=2, init_scale=(1.0, 1.5, 2.0))
    x, p = torch.randn(1, 3, 9, 9), torch.rand(1, 3, 9, 9)
    expected = x * torch.tensor([1.0, 1.5, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(st(x, p), expected)
    single = SaliencyTransform(channels=1, init_scale=2.0)
    assert torch.equal(single.weights(torch.rand(1, 1, 4, 4)), torch.full((1, 1, 4, 4), 2.0))


@pytest.mark.parametrize("layers, k, reach", [(1, 1, 0), (1, 3, 1), (1, 5, 2), (2, 3, 2), (2, 5, 4)])
def test_each_weight_depends_on_a_small_neighbourhood(layers, k, reach):
    torch.manual_seed(0)
    st = SaliencyTransform(kernel_size=k, layers=layers)
    with torch.no_grad():
        for m in st.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.uniform_(0.1, 1.0)  # positive weights: every tap matters
                m.bias.fill_(0.1)
    p = torch.rand(1, 3, 15, 15)
    q = p.clone()
    q[0, 1, 7, 7] += 1.0  # change P at one pixel
    changed = (st.weights(q) - st.weights(p)).abs().sum(dim=(0, 1)) > 1e-6
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.min() == 7 - reach and rows.max() == 7 + reach  # exactly the receptive field
    assert cols.min() == 7 - reach and cols.max() == 7 + reach


@pytest.mark.parametrize("layers", [1, 2])
def test_gradients_reach_every_parameter_after_one_step(layers):
    torch.manual_seed(0)
    st = SaliencyTransform(kernel_size=3, layers=layers)
    opt = torch.optim.Adam(st.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 12, 12)
    p = torch.rand(2, 3, 12, 12)
    target = (torch.rand(2, 3, 12, 12) > 0.5).float()

    def loss_fn():
        return soft_dsc_loss(torch.sigmoid(st(x, p) - 0.5), target)

    loss_fn().backward()  # step 0: the zero last conv blocks the gradient to earlier layers
    opt.step()
    opt.zero_grad()
    loss_fn().backward()
    for name, param in st.named_parameters():
        assert param.grad is not None and param.grad.abs().max() > 0, name


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel_size": 4}, "odd"),
    ({"kernel_size": 0}, "odd"),
    ({"kernel_size": (3, 3)}, "odd"),
    ({"layers": 3}, "layers"),
    ({"layers": 0}, "layers"),
    ({"init_scale": (1.0, 1.5)}, "one value per channel"),
    ({"channels": 0}, "channels"),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SaliencyTransform(**kwargs)


@pytest.mark.parametrize("x_shape, p_shape", [((1, 3, 8, 8), (1, 3, 8, 9)), ((1, 1, 8, 8), (1, 1, 8, 8)),
                                              ((3, 8, 8), (3, 8, 8))])
def test_bad_shapes_raise(x_shape, p_shape):
    st = SaliencyTransform()
    with pytest.raises(ValueError, match="SaliencyTransform"):
        st(torch.zeros(x_shape), torch.zeros(p_shape))
