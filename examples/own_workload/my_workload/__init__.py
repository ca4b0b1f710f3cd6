"""A user's own workload for scalestudy: a model, two dataset loaders and an optimizer, written against
scalestudy's contracts only (nothing here imports scalestudy)."""
