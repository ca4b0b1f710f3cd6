"""scalestudy: hyperparameter-scaling studies (batch size, learning rate, momentum) on Ray Tune + MLflow.

The top-level package imports nothing heavy: ``import scalestudy`` starts no Ray and
loads no torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
