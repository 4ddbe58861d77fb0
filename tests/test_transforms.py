"""The transforms family on toys (tests/toys/toy_transform_models.py): the correct toy
passes every transform, each planted quirk fails the transform it targets with a message
that says what differed, graph breaks beyond the record fail and fewer are an "improved"
note, --update-graph-breaks records, timm's own exclusion lists decide which models are
held to TorchScript/FX, and the suite ids are '<model>-<transform>'."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.checks import transforms as tf
from harness.models import claims
from harness.registry.support_claims import SupportClaim
from tests.helpers import run_suites
from tests.toys import toy_transform_models  # noqa: F401 - registers the toys

SIZE = (3, 32, 32)


def _record(**counts: int) -> tf.GraphBreaks:
    return tf.GraphBreaks(Path("graph_breaks.json"), {f"toy_tf_{k}": v for k, v in counts.items()})


@pytest.mark.parametrize("transform", tf.CPU_TRANSFORMS)
def test_correct_toy_passes_every_transform(transform):
    result = tf.check_transform("toy_tf_ok", SIZE, transform, _record(ok=0))
    assert result.errors and all(err <= budget for err, budget in result.errors.values())


@pytest.mark.parametrize("bug, transform, message", [
    ("compile_differs", "compile_eager", r"^torch.compile\(backend='eager'\): output differs from eager: max abs err "),
    ("compile_differs", "compile_aot_eager", r"^torch.compile\(backend='aot_eager'\): output differs from eager"),
    ("script_differs", "jit_script", r"^torch.jit.script: output differs from eager: .* x the model's own float32"),
    ("fx_differs", "fx_trace", r"^FX graph module: output differs from eager"),
    ("graph_break", "fx_trace",
     r"^FX tracing of toy_tf_graph_break \(timm create_feature_extractor\) raised TypeError"),
    ("layout_differs", "channels_last", r"^channels_last: output differs from eager"),
    ("batch_mix", "batch_invariance", r"^sample 0 run alone: output differs from its row of the batch of 3"),
    ("ckpt_drops_block", "grad_checkpointing",
     r"^gradient checkpointing \(train mode\): output differs from without checkpointing"),
    ("ckpt_detach", "grad_checkpointing",
     r"^parameters without a gradient under gradient checkpointing \(4\):\n  stem.0.bias"),
])
def test_planted_quirk_fails_its_transform(bug, transform, message):
    with pytest.raises(AssertionError, match=message):
        tf.check_transform(f"toy_tf_{bug}", SIZE, transform, _record(**{bug: 0}))


def test_planted_quirks_leave_the_other_transforms_alone():
    for transform in ("compile_eager", "channels_last", "batch_invariance", "grad_checkpointing"):
        tf.check_transform("toy_tf_script_differs", SIZE, transform, _record(script_differs=0))


def test_graph_breaks_beyond_the_record_fail_and_fewer_are_a_note():
    with pytest.raises(AssertionError, match=r"^torch.compile: 2 graph break\(s\), 0 recorded \(first: .*"
                                             r"Tensor.item\(\) .* at toy_transform_models.py:\d+"):
        tf.check_transform("toy_tf_graph_break", SIZE, "compile_eager", _record(graph_break=0))
    assert not tf.check_transform("toy_tf_graph_break", SIZE, "compile_eager", _record(graph_break=2)).notes
    improved = tf.check_transform("toy_tf_graph_break", SIZE, "compile_eager", _record(graph_break=5))
    assert improved.notes == ["toy_tf_graph_break: improved, 2 graph break(s) where 5 are recorded; re-record with: "
                              "python -m pytest suites -m transforms -k compile_eager --models 'toy_tf_graph_break' "
                              "--update-graph-breaks"]
    with pytest.raises(AssertionError, match=r"2 graph break\(s\), expected 0 \(graph_breaks.json records no count for "
                                             r"toy_tf_graph_break\) .*; if accepted, record them with: python -m"):
        tf.check_transform("toy_tf_graph_break", SIZE, "compile_eager", _record())
    tf.check_transform("toy_tf_ok", SIZE, "compile_eager", _record())  # no record, no break


def test_unsupported_gradient_checkpointing_is_a_skip_with_timms_words():
    with pytest.raises(tf.TransformSkip, match=r"set_grad_checkpointing\(True\): gradient checkpointing not supported"):
        tf.check_transform("toy_tf_ckpt_unsupported", SIZE, "grad_checkpointing")


def test_timms_exclusion_lists_decide_the_claims(tmp_path):
    claim = SupportClaim("", ("*enormous*",), ("hrnet*",), ("hiera*",), "test")
    assert not claims.claims("jit", "hrnet_w18_small", claim) and claims.claims("fx", "hrnet_w18_small", claim)
    assert not claims.claims("fx", "hiera_tiny_224", claim) and not claims.claims("jit", "vit_enormous_x", claim)
    assert claims.claim_for_version("1.0.31").jit_exclude[-1] == "gemma4_vit*"
    assert "dpn*" in claims.claim_for_version("1.0.30").jit_exclude
    assert "dpn*" not in claims.claim_for_version("1.0.31").jit_exclude
    assert claims.claim_for_version("0.9.16").jit_exclude == ()
    tests = tmp_path / "test_models.py"
    tests.write_text("import os\nEXCLUDE_JIT_FILTERS = ['a*', 'b*']\nif 'GITHUB_ACTIONS' in os.environ:\n"
                     "    EXCLUDE_FILTERS = ['big*']\nelse:\n    EXCLUDE_FILTERS = ['*enormous*']\n"
                     "EXCLUDE_FX_FILTERS = ['c*']\n")
    parsed = claims.claim_from_tests(tests)
    assert (parsed.exclude, parsed.jit_exclude, parsed.fx_exclude) == (("*enormous*",), ("a*", "b*"), ("c*",))


def test_suite_ids_skips_and_graph_break_recording(tmp_path):
    record = tmp_path / "graph_breaks.json"
    base = ["-p", "tests.toys.toy_transform_models", "-m", "transforms", "--graph-breaks-file", str(record)]
    run = run_suites(base + ["--models", "toy_tf_ok,toy_tf_ckpt_unsupported", "--update-graph-breaks",
                             "-k", "compile_eager"], tmp_path)
    assert run.returncode == 0, run.output
    assert json.loads(record.read_text())["graph_breaks"] == {"toy_tf_ckpt_unsupported": 0, "toy_tf_ok": 0}
    run = run_suites(base + ["--models", "toy_tf_ok,toy_tf_ckpt_unsupported"], tmp_path)
    assert run.returncode == 0, run.output
    expected = {f"test_transform[toy_tf_ok-{t}]": "passed" for t in tf.CPU_TRANSFORMS}
    expected.update({f"test_transform[toy_tf_ckpt_unsupported-{t}]": "passed" for t in tf.CPU_TRANSFORMS})
    expected["test_transform[toy_tf_ckpt_unsupported-grad_checkpointing]"] = "skipped"
    assert run.outcomes == expected, run.output


def test_the_float64_run_is_paid_only_where_outputs_differ(monkeypatch):
    """Outputs equal to eager bit for bit need no budget, so the float64 forward (and the
    float64 train step) runs only for a transform whose outputs differ at all; a planted
    difference still gets the model's own float64 budget in its message."""
    calls = []
    real_outputs64, real_step = tf._outputs64, tf._train_step
    monkeypatch.setattr(tf, "_outputs64", lambda m, x: calls.append("forward") or real_outputs64(m, x))
    monkeypatch.setattr(tf, "_train_step", lambda m, x, seed: (calls.append(str(x.dtype)), real_step(m, x, seed))[1])
    tf._subjects.clear()
    for transform in ("fx_trace", "grad_checkpointing"):
        tf.check_transform("toy_tf_ok", SIZE, transform, _record(ok=0))
    assert calls == ["torch.float32", "torch.float32"]  # the plain and the checkpointed step, no float64
    with pytest.raises(AssertionError, match=r"x the model's own float32 error"):
        tf.check_transform("toy_tf_ckpt_drops_block", SIZE, "grad_checkpointing", _record(ckpt_drops_block=0))
    assert "torch.float64" in calls
