"""A law file's contents, built in tests: the law as its file holds it, read by the file reader."""

from scalestudy.law import FORM, SCHEMA, ScalingLaw


def make_law(**changes):
    """A law as its file holds it (``changes``: top-level keys replaced), read by the file reader."""
    values = {"schema": SCHEMA, "form": FORM, "k": 1e-3, "alpha": 1.0, "beta": 1.0,
                  "ci95": {"k": [9e-4, 1.1e-3], "alpha": [0.98, 1.02], "beta": [0.97, 1.03],
                        "breakdown_batch_size": [900.0, 1200.0]},
                  "breakdown_batch_size": 1024.0, "domain": {"batch_size": [16.0, 1024.0], "momentum": [0.0, 0.9]},
                  "dataset_size": 50_000, "fitted_on": {"cells": 21, "trials": 462}, "r2": 0.999,
                  "prediction": {"parameters": ["log_k", "alpha", "beta"], "dof": 18, "t95": 2.1009,
                                 "covariance": [[0.01, 0.0, 0.0], [0.0, 1e-4, 0.0], [0.0, 0.0, 1e-4]],
                                 "cell_scatter": 0.001},
                  "provenance": {"experiment": "quickstart", "tracking_uri": "sqlite:///mlflow.db", "spec_hash": "abc",
                              "scalestudy_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00"},
                  "noise_scale_opt": {"value": 49.6, "ci95": [49.0, 50.0]},
                  "gap_slope": {"per": "doubling of batch size", "value": 0.01, "ci95": [0.009, 0.011]},
                  "gradient_noise_scale": {"value": 480.0, "iqr": [400.0, 560.0], "trials": 42,
                                           "breakdown_batch_size": 1024.0, "ratio_to_breakdown": 480 / 1024},
                  "compute": {"trials": 462, "stopped": 12, "trial_epochs": 5000.0, "updates": 1e6,
                              "cpu_hours": 3.5, "gpu_hours": None, "notes": []},
                  "breakdown_test": {"outcome": "breakdown", "reason": "broken power law preferred: p = 0.0025",
                                     "p_value": 0.0025, "candidate_batch_size": 1024.0,
                                     "last_batch_size_in_law": 1024},
                  "smooth_bend": {"form": "lr = lr_max * (1-m)^beta / (1 + B_noise/B)^alpha", "lr_max": 1.5,
                                  "alpha": 1.01, "beta": 1.0, "noise_batch_size": 1400.0,
                                  "ci95": {"alpha": [0.95, 1.08], "noise_batch_size": [900.0, 2500.0]},
                                  "preferred": "either", "p_hinge": 0.4, "p_smooth": 0.3,
                                  "reason": "the data cannot tell a smooth bend from a hinge", "cells": 21}}
    values.update(changes)
    return ScalingLaw.from_dict(values)
