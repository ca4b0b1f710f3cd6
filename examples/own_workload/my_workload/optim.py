"""The optimizer: Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 1),
built by the contract ``build(params, lr, momentum, **options) -> torch.optim.Optimizer``.

The spec's momentum axis is Lion's β1, held as ``betas[0]`` in each param group: that is where
scalestudy sets the momentum when a schedule changes it.
"""

import torch


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                average = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                # θ ← θ − lr·(sign(β1·m + (1−β1)·g) + λ·θ);  m ← β2·m + (1−β2)·g
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(average.mul(beta1).add(p.grad, alpha=1 - beta1)), alpha=-group["lr"])
                average.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def build_lion(params, lr, momentum, beta2=0.99, weight_decay=0.0):
    return Lion(params, lr=lr, betas=(momentum, beta2), weight_decay=weight_decay)
