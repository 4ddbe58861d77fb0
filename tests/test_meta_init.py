"""The meta_init family on toys (tests/toys/toy_meta_models.py): the correct toy passes
every variant, each planted deferred-init bug fails the variant that exercises it with
the tensors named, init_weights and device_dtype are collected only where the signature
declares them, and over --max-params only the structure is checked."""
from __future__ import annotations

import pytest
import torch

from harness.checks import meta_init
from harness.models import discovery
from harness.models.facts import gather
from tests.helpers import run_suites
from tests.toys import toy_meta_models, toy_models  # noqa: F401 - registers the toys

SIZE = (3, 32, 32)


@pytest.mark.parametrize("variant", meta_init.VARIANTS)
def test_correct_toy_passes_every_variant(variant):
    meta_init.check_meta_init("toy_meta_ok", SIZE, variant, numeric=True)
    meta_init.check_meta_init("toy_meta_ok", SIZE, variant, numeric=False)


@pytest.mark.parametrize("bug, variant, message", [
    ("item_in_init", "meta_to_empty", r"^create_model under torch.device\('meta'\) raised RuntimeError: "
                                      r"Tensor.item\(\) cannot be called on meta tensors"),
    ("no_buffer_init", "meta_to_empty", r"re-init of non-persistent buffers: buffers unlike the normal build's "
                                        r"\(1\):\n  pos.table: never recomputed \(still holds the uninitialized"),
    ("skips_on_meta", "accelerate", r"^create_model under accelerate.init_empty_weights\(\), load_state_dict"
                                    r"\(assign=True\): buffers unlike the normal build's \(1\):\n  pos.table: "),
    ("buffer_from_param", "accelerate", r"tensors left on the meta device \(1\):\n  pos.table$"),
    ("init_misses_param", "init_weights", r"tensors init_weights left uninitialized \(1\):\n  head.bias \(parameter\)"),
    ("ignores_device", "device_dtype", r"^create_model\(device='meta'\): tensors not on the meta device \(1\):\n"
                                       r"  pos.table"),
    ("ignores_dtype", "device_dtype", r"^create_model\(dtype=torch.float64\): floating tensors not in float64 "
                                      r"\(1\):\n  pos.table: torch.float32"),
])
def test_planted_bug_fails_its_variant(bug, variant, message):
    with pytest.raises(AssertionError, match=message):
        meta_init.check_meta_init(f"toy_meta_{bug}", SIZE, variant, numeric=True)


def test_planted_bugs_pass_the_variants_that_do_not_exercise_them():
    meta_init.check_meta_init("toy_meta_skips_on_meta", SIZE, "meta_to_empty", numeric=True)
    meta_init.check_meta_init("toy_meta_buffer_from_param", SIZE, "meta_to_empty", numeric=True)
    meta_init.check_meta_init("toy_meta_no_buffer_init", SIZE, "accelerate", numeric=True)


def test_declared_apis_are_read_from_signatures():
    ok, plain = gather("toy_meta_ok"), gather("toy_ok")
    assert ok.deferred_init and ok.factory_kwargs
    assert not plain.deferred_init and not plain.factory_kwargs
    assert meta_init.applicable(ok) == meta_init.VARIANTS
    assert meta_init.applicable(plain) == ("meta_to_empty", "accelerate")

    class Base(torch.nn.Module):
        def __init__(self, a=1, device=None, dtype=None):
            super().__init__()

    class PassThrough(Base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)

    class Closed(Base):
        def __init__(self, a=1):
            super().__init__(a)

    assert discovery.accepts_factory_kwargs(PassThrough()) and not discovery.accepts_factory_kwargs(Closed())


def test_suite_ids_and_structural_cases(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_meta_models", "-m", "meta_init",
                      "--models", "toy_meta_ok,toy_meta_no_buffer_init"], tmp_path)
    assert run.outcomes == {**{f"test_meta_init[toy_meta_ok-{v}]": "passed" for v in meta_init.VARIANTS},
                            **{f"test_meta_init[toy_meta_no_buffer_init-{v}]": "passed" for v in meta_init.VARIANTS},
                            "test_meta_init[toy_meta_no_buffer_init-meta_to_empty]": "failed",
                            "test_meta_init[toy_meta_no_buffer_init-init_weights]": "failed"}, run.output
    assert "pos.table (buffer)" in run.messages["test_meta_init[toy_meta_no_buffer_init-init_weights]"]
    structural = run_suites(["-p", "tests.toys.toy_meta_models", "-m", "meta_init",
                             "--models", "toy_meta_no_buffer_init", "--max-params", "10"], tmp_path)
    assert structural.returncode == 0 and set(structural.outcomes.values()) == {"passed"}, structural.output


def test_the_float64_run_is_made_only_where_outputs_differ(monkeypatch):
    """Loaded from the same state_dict, the meta-built model usually agrees with the normal
    build bit for bit and needs no budget: the float64 forward is skipped. A model 1% off
    still meets the normal build's float64 budget, and fails it."""
    import copy

    from harness.weights import model_cache
    forwards = []

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            forwards.append(x.dtype)
            return self.inner(x)

    real_copy = meta_init.float64_copy
    monkeypatch.setattr(meta_init, "float64_copy", lambda m: Counting(real_copy(m)))
    meta_init.check_meta_init("toy_meta_ok", SIZE, "meta_to_empty", numeric=True)
    assert forwards == []
    reference = model_cache.deterministic("toy_meta_ok")
    off = copy.deepcopy(reference)
    with torch.no_grad():
        for p in off.parameters():
            p.mul_(1.01)
    with pytest.raises(AssertionError, match=r"differs from the normal build: .* x the model's own float32 error"):
        meta_init._assert_outputs(off, reference, "toy_meta_ok", SIZE, "a 1% change")
    assert forwards == [torch.float64]
