"""Small deterministic stand-ins for trained nets, shared by the tests."""
import torch
import torch.nn as nn


class ThresholdNet(nn.Module):
    """A 'net' whose logits say: bright pixels (x > level) are the target."""

    def __init__(self, level=0.5, gain=40.0):
        super().__init__()
        self.level, self.gain = level, gain
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.gain * (x - self.level) + 0 * self.dummy


class ConstNet(nn.Module):
    def __init__(self, value=-50.0):
        super().__init__()
        self.value = value
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full_like(x, self.value) + 0 * self.dummy
