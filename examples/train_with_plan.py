import torch
from torch.utils.data import DataLoader, TensorDataset

from scalestudy.law import Plan

plan = Plan.load("plan.yaml")  # written by: scalestudy plan --law law.json ...
inputs = torch.randn(plan.dataset_size, 40)  # your dataset: plan.dataset_size examples
data = TensorDataset(inputs, (inputs[:, 0] > 0).long())
model = torch.nn.Sequential(torch.nn.Linear(40, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=plan.lr, momentum=plan.momentum)
scheduler = plan.lr_scheduler(optimizer)  # sets lr and momentum at every update
loader = DataLoader(data, batch_sampler=plan.batch_sampler(seed=0))  # the plan's batch at every update
for step, (x, y) in enumerate(loader):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    if step % 100 == 0:
        print(f"update {step}: batch {len(x)}, lr {optimizer.param_groups[0]['lr']:.4g}, loss {loss.item():.4f}")
