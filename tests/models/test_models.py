"""Contract suite that every registered classifier passes, the language model's own (causal
masking, tied head), plus the registry and options API."""

from __future__ import annotations

import subprocess
import sys

import pydantic
import pytest
import torch
from torch import nn

from scalestudy.models import MODEL_OPTIONS, MODELS, build_model, model_options
from scalestudy.models.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d
from scalestudy.registry import UnknownNameError

# The input each model is built for (no batch dimension): mnist1d is a flat vector of 40 floats.
INPUT_SHAPES = {
    "mlp": (40,),
    "cnn1d": (40,),
    "resnet8": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "resnet32": (3, 32, 32),
    "wrn16_4": (3, 32, 32),
}
# The models with batch norm that map inputs to class logits (the transformer maps tokens to
# next-token logits and has LayerNorm: its contract is below).
CLASSIFIERS = sorted(INPUT_SHAPES)
# Secondary tests run 2-d models on 8×8 images (they pool globally, so any size works) to stay fast.
SMALL_SHAPES = {name: shape if len(shape) == 1 else (3, 8, 8) for name, shape in INPUT_SHAPES.items()}
NUM_CLASSES = 10
BATCH = 8
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
GHOST_NORMS = (GhostBatchNorm1d, GhostBatchNorm2d)


def _build(name: str, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, input_shape=INPUT_SHAPES[name], num_classes=NUM_CLASSES, **kwargs)


def _batch(name: str, batch: int = BATCH, small: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *(SMALL_SHAPES if small else INPUT_SHAPES)[name], generator=g)
    return x, torch.randint(0, NUM_CLASSES, (batch,), generator=g)


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.train()
    logits = model(x)
    nn.functional.cross_entropy(logits, y).backward()
    return logits


def test_every_registered_model_has_an_input_shape_and_options():
    # Not classifiers: the transformer (tests/tasks/test_language_model.py), nqm (tests/nqm/).
    assert set(MODELS.names()) == set(INPUT_SHAPES) | {"transformer", "nqm"} == set(MODEL_OPTIONS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_with_default_options(name):
    model = _build(name)
    x, y = _batch(name)
    logits = _train_step(model, x, y)
    assert logits.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
    assert any(isinstance(m, BATCH_NORMS) for m in model.modules())  # norm="batch" is the default
    model.eval()
    with torch.no_grad():
        assert model(x[:3]).shape == (3, NUM_CLASSES)  # eval works on any batch size


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_same_seed_same_init(name):
    a, b, c = _build(name, seed=0), _build(name, seed=0), _build(name, seed=1)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert any(not torch.equal(state_a[k], state_c[k]) for k in state_a)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_ghost_batch_size_makes_every_batch_norm_ghost(name):
    plain = _build(name)
    ghost = _build(name, ghost_batch_size=4)
    assert not any(isinstance(m, BATCH_NORMS) for m in ghost.modules())
    num_ghost = sum(isinstance(m, GHOST_NORMS) for m in ghost.modules())
    assert num_ghost == sum(isinstance(m, BATCH_NORMS) for m in plain.modules()) > 0
    assert all(m.ghost_batch_size == 4 for m in ghost.modules() if isinstance(m, GHOST_NORMS))
    assert ghost.state_dict().keys() == plain.state_dict().keys()
    x, y = _batch(name, small=True)
    assert torch.isfinite(_train_step(ghost, x, y)).all()  # 2 ghost batches of 4


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_norm_none_has_no_normalisation_layer_and_trains(name):
    model = _build(name, options={"norm": "none"})
    assert not any(isinstance(m, (nn.modules.batchnorm._NormBase, *GHOST_NORMS)) for m in model.modules())
    x, y = _batch(name, small=True)
    assert torch.isfinite(_train_step(model, x, y)).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        _build(name, options={"norm": "none"}, ghost_batch_size=4)


@pytest.mark.parametrize("name", [n for n in CLASSIFIERS if len(INPUT_SHAPES[n]) == 3])
def test_channels_last_is_kept_through_2d_models(name):
    model = _build(name).eval()
    x, _ = _batch(name, batch=2, small=True)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        layouts = []
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.register_forward_hook(
                    lambda m, inp, out: layouts.append(out.is_contiguous(memory_format=torch.channels_last)))
        out = model(x.to(memory_format=torch.channels_last))
    assert layouts and all(layouts)  # every conv output stays channels_last
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_parameter_counts_match_the_papers():
    def count(name: str) -> int:
        return sum(p.numel() for p in _build(name).parameters())

    assert 0.26e6 < count("resnet20") < 0.28e6  # He et al. 2016: 0.27M
    assert 0.45e6 < count("resnet32") < 0.47e6  # 0.46M
    assert 2.7e6 < count("wrn16_4") < 2.8e6  # Zagoruyko & Komodakis 2016: 2.7M


def test_unknown_model_name_lists_the_known_names():
    with pytest.raises(UnknownNameError) as excinfo:
        build_model("resnet9000", input_shape=(3, 32, 32), num_classes=10)
    for name in MODELS.names():
        assert name in str(excinfo.value)
    with pytest.raises(UnknownNameError):
        model_options("resnet9000", {})


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_options_are_strict_frozen_and_defaulted(name):
    defaults = model_options(name, {})
    assert defaults == MODEL_OPTIONS[name]()
    assert defaults.norm == "batch"
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        model_options(name, {"bogus": 1})
    with pytest.raises(pydantic.ValidationError):
        model_options(name, {"norm": "layer"})
    with pytest.raises(pydantic.ValidationError):
        defaults.norm = "none"  # frozen
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        build_model(name, input_shape=INPUT_SHAPES[name], num_classes=10, options={"bogus": 1})


def test_model_specific_options_take_effect():
    assert model_options("mlp", {"hidden": [64]}).hidden == (64,)
    mlp = _build("mlp", options=model_options("mlp", {"hidden": [64, 32]}))
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [64, 32, NUM_CLASSES]
    cnn = _build("cnn1d", options={"channels": 8})
    assert all(m.out_channels == 8 for m in cnn.modules() if isinstance(m, nn.Conv1d))
    narrow = _build("resnet20", options={"width": 8})
    assert narrow.fc.in_features == 32
    wrn = _build("wrn16_4", options={"dropout": 0.3})
    assert sum(isinstance(m, nn.Dropout) for m in wrn.modules()) == 6
    with pytest.raises(pydantic.ValidationError):
        model_options("wrn16_4", {"dropout": 1.0})
    with pytest.raises(pydantic.ValidationError):
        model_options("mlp", {"hidden": [0]})


def test_cnn1d_reads_a_flat_vector_as_one_channel():
    model = _build("cnn1d").eval()
    x, _ = _batch("cnn1d", batch=2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.unsqueeze(1)))


def test_importing_the_registry_does_not_import_torch():
    code = ("import sys, scalestudy.models as m; m.model_options('resnet20', {'norm': 'none'}); "
            "m.MODELS.check('mlp'); assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the language model ---------------------------------------------------------------------------

VOCAB, LENGTH = 256, 12


def _transformer(seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("transformer", input_shape=(LENGTH,), num_classes=VOCAB,
                       options={"d_model": 32, "n_layers": 2, "n_heads": 4, **options})


def test_transformer_future_tokens_never_change_earlier_logits():
    model = _transformer().eval()
    tokens = torch.randint(0, VOCAB, (3, LENGTH), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % VOCAB  # every token from position 7 on
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert before.shape == (3, LENGTH, VOCAB)
    torch.testing.assert_close(before[:, :7], after[:, :7], rtol=0, atol=0)  # exactly: causal
    assert not torch.allclose(before[:, 7:], after[:, 7:])  # and the later positions do read them


def test_transformer_trains_ties_its_head_and_seeds_its_init():
    model = _transformer()
    assert model.head.weight is model.tokens.weight
    assert not any(isinstance(m, (nn.modules.batchnorm._NormBase, *GHOST_NORMS)) for m in model.modules())
    tokens = torch.randint(0, VOCAB, (4, LENGTH + 1), generator=torch.Generator().manual_seed(1))
    logits = model(tokens[:, :-1])
    nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    for key, value in _transformer().state_dict().items():
        assert torch.equal(value, _transformer().state_dict()[key]), key
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        build_model("transformer", input_shape=(LENGTH,), num_classes=VOCAB, ghost_batch_size=4)


def test_transformer_options_are_strict_and_checked():
    assert model_options("transformer", {}).norm == "layer"
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        model_options("transformer", {"bogus": 1})
    with pytest.raises(ValueError, match="multiple of n_heads"):
        _transformer(d_model=30)
    with pytest.raises(ValueError, match="shorter than the data"):
        _transformer(seq_len=LENGTH - 1)
