"""Regressions planted in a copy of the importable timm's own files (tests/planted_timm.py),
each turning the check that exists for it red on ``python -m pytest suites -m <family>
--models <model>``: a ViT constructor that rejects a new patch size FAILS its patch_size
cases (they used to vanish: the probe swallowed the error), a ``reparameterize_model`` that
does nothing FAILS reparam (it used to pass every sub-check), and NextViT features scaled by
1.01 FAIL golden (the uncalibrated record's budget was ~9% of the output). Plus: the
benchmark suite under xdist reports skipped, not passed. One model each, to stay cheap."""
from __future__ import annotations


from tests.helpers import run_suites
from tests.planted_timm import insert_after, planted_timm


VIT_REJECTS_NEW_PATCH = insert_after(
    "        super().__init__()\n",
    "        if patch_size not in (16, (16, 16)):\n"
    "            raise ValueError(f'planted regression: patch_size={patch_size} is no longer supported')\n",
    start="class VisionTransformer(nn.Module):")
REPARAM_NOOP = ("    _fuse(model)\n    return model", "    return model")  # timm/models/_manipulate.py
NEXTVIT_FEATURES_1PCT = ("            x = self.stages(x)\n        x = self.norm(x)\n        return x",
                         "            x = self.stages(x)\n        x = self.norm(x) * 1.01\n        return x")


def test_a_constructor_that_rejects_the_new_patch_size_fails_patch_size(tmp_path):
    timm_copy = planted_timm(tmp_path, {"models/vision_transformer.py": VIT_REJECTS_NEW_PATCH})
    run = run_suites(["-m", "patch_size", "--models", "vit_tiny_patch16_224", "-k", "augreg_in21k-timm-"],
                     tmp_path, [timm_copy])
    case = "test_patch_size[vit_tiny_patch16_224.augreg_in21k-timm-{}]"
    assert run.outcomes == {case.format("original"): "passed", case.format("patch_size_32"): "failed",
                            case.format("img_size_160"): "passed"}, run.output
    message = run.messages[case.format("patch_size_32")]
    assert ("create_model('vit_tiny_patch16_224.augreg_in21k', patch_size=32, pretrained=True) from a timm "
            "checkpoint raised ValueError: planted regression: patch_size=32") in message
    assert run.returncode == 1


def test_a_reparameterize_model_that_does_nothing_fails_reparam(tmp_path):
    timm_copy = planted_timm(tmp_path, {"models/_manipulate.py": REPARAM_NOOP})
    run = run_suites(["-m", "reparam", "--models", "nextvit_small"], tmp_path, [timm_copy])
    test = "test_reparam_equivalence[nextvit_small]"
    assert run.outcomes == {test: "failed"}, run.output
    assert "reparameterize_model changed nothing: no module replaced, added or removed" in run.messages[test]


def test_nextvit_features_one_percent_off_fail_golden(tmp_path):
    timm_copy = planted_timm(tmp_path, {"models/nextvit.py": NEXTVIT_FEATURES_1PCT})
    run = run_suites(["-m", "golden", "--models", "nextvit_small"], tmp_path, [timm_copy])
    test = "test_golden[nextvit_small]"
    assert run.outcomes == {test: "failed"}, run.output
    message = run.messages[test]
    assert "golden mismatch for nextvit_small [cpu-float32]: state_dict layout unchanged, only the numbers" in message
    assert "FAIL features" in message and "FAIL logits" in message


def test_the_benchmark_under_xdist_is_skipped_not_passed(tmp_path):
    run = run_suites(["-p", "tests.toys.toy_models", "-m", "benchmark", "--models", "toy_ok", "-n", "2"], tmp_path)
    assert run.outcomes == {"test_benchmark[toy_ok]": "skipped"}, run.output
    assert "pytest-benchmark times nothing here" in run.messages["test_benchmark[toy_ok]"]
