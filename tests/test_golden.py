"""The golden check family: it catches a planted change of 1e-3 relative in one layer,
accepts float32 reordering noise (another summation order, another thread count), names
a state_dict layout change, and fails clearly on a missing or corrupt file. Toy:
tests/toys/toy_golden_models.py."""
from __future__ import annotations

import pytest
import torch

from harness.checks import golden
from harness.registry import tolerances
from tests.helpers import run_suites
from tests.toys import toy_golden_models

TOY, SIZE = "toy_golden", (3, 32, 32)


@pytest.fixture
def recorded(tmp_path):
    assert golden.update_golden(TOY, SIZE, tmp_path) == f"{TOY}: new"
    return tmp_path


def test_correct_toy_matches_its_record(recorded):
    result = golden.check_golden(TOY, SIZE, recorded)
    assert {k.key for k in result.keys} == {"logits", "pre_logits", "features"}
    assert all(k.ok and 0 < k.max_abs <= k.budget for k in result.keys)


def test_planted_relative_change_of_1e3_in_one_layer_fails_with_numbers(recorded, monkeypatch):
    monkeypatch.setenv(toy_golden_models.ENV, "scale")
    with pytest.raises(AssertionError) as exc:
        golden.check_golden(TOY, SIZE, recorded)
    message = str(exc.value)
    assert "golden mismatch for toy_golden [cpu-float32]: state_dict layout unchanged, only the numbers" in message
    assert "FAIL logits: max abs err" in message and "max rel err" in message and "argmax agrees" in message
    assert "FAIL features" in message


def test_float32_reordering_is_accepted_as_noise(recorded, monkeypatch):
    base, _, _ = golden.run_candidate(TOY, SIZE, "cpu", "float32")
    monkeypatch.setenv(toy_golden_models.ENV, "reorder")
    reordered, _, _ = golden.run_candidate(TOY, SIZE, "cpu", "float32")
    assert not torch.equal(base["logits"], reordered["logits"]), "the toy must really reorder"
    golden.check_golden(TOY, SIZE, recorded)


def test_layout_change_is_named(recorded, monkeypatch):
    monkeypatch.setenv(toy_golden_models.ENV, "rename")
    with pytest.raises(AssertionError, match=r"the state_dict layout changed \(4 differences: missing stage.bias; "
                                             r"missing stage.weight; unexpected stage_renamed.bias"):
        golden.check_golden(TOY, SIZE, recorded)


def test_update_summarizes_what_changed_and_overwrites_a_change_only_when_accepted(recorded, monkeypatch):
    line = golden.update_golden(TOY, SIZE, recorded)
    assert line.startswith(f"{TOY}: unchanged within noise (") and "logits 0," in line, line
    before = golden.golden_path(recorded, TOY).read_bytes()
    monkeypatch.setenv(toy_golden_models.ENV, "scale")
    with pytest.raises(golden.GoldenChangedError, match=rf"{TOY}: not re-recorded, the golden values CHANGED: .*"
                                                        r"logits: max abs err .* re-record with --accept-golden-changes"):
        golden.update_golden(TOY, SIZE, recorded)
    assert golden.golden_path(recorded, TOY).read_bytes() == before, "a refused change must leave the file"
    line = golden.update_golden(TOY, SIZE, recorded, accept_changes=True)
    assert line.startswith(f"{TOY}: CHANGED: ") and "| logits: max abs err" in line and "argmax agrees" in line, line
    golden.check_golden(TOY, SIZE, recorded)  # the new record is the reference now


def test_real_model_thread_noise_passes_and_a_planted_layer_change_fails(tmp_path, monkeypatch):
    name, size = "resnet18", (3, 64, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        golden.update_golden(name, size, tmp_path)
        torch.set_num_threads(1)
        golden.check_golden(name, size, tmp_path)
    finally:
        torch.set_num_threads(threads)
    built = golden._built

    def planted(model_name, device):
        model = built(model_name, device)
        model.layer3.register_forward_hook(lambda m, i, out: out * (1 + 1e-3))
        return model

    monkeypatch.setattr(golden, "_built", planted)
    # resnet18's 512 pre-logits are stored sketched, and the sketch sees the change too
    assert golden.load(golden.golden_path(tmp_path, name), name).tensors["pre_logits"].shape == (2, golden.SKETCH_DIM)
    with pytest.raises(AssertionError, match=r"(?s)only the numbers differ.*FAIL pre_logits"):
        golden.check_golden(name, size, tmp_path)


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(golden.GoldenFileError, match=r"no golden outputs for toy_golden: .* does not exist. Record "
                                                     r"them with:\n  python -m pytest suites -m golden --models "
                                                     r"'toy_golden' --update-golden --golden-dir "):
        golden.check_golden(TOY, SIZE, tmp_path)
    path = golden.golden_path(tmp_path, TOY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(golden.GoldenFileError, match=r"is corrupt or not a harness-golden/3 file .* Re-record"):
        golden.check_golden(TOY, SIZE, tmp_path)


def test_autocast_profile_accepts_bf16_on_cpu(recorded):
    result = golden.check_golden(TOY, SIZE, recorded, precision="bf16")
    assert result.profile == "cpu-bf16" and any(k.max_abs > 0 for k in result.keys)


# The planted change (one layer, half its channels) each precision's profiles must see on the
# toy, whose own error is ~2e-7 (float32), 7e-3 (bf16) and 6e-4 (fp16) of its output. Measured
# error / budget (cpu, contended machine, deterministic): float32 1e-3 -> 268 (cuda-float32 67);
# fp16 1e-2 -> 3.6 (3e-3 -> 1.1); bf16 5e-2 -> 1.7 (1e-2 -> 0.38: below bf16's own noise,
# registry/tolerances.py says why).
SHOULD_SEE = {"float32": 1e-3, "float64": 1e-5, "fp16": 1e-2, "bf16": 5e-2}


@pytest.mark.parametrize("profile", sorted(tolerances.GOLDEN_PROFILES))
def test_each_profile_passes_its_own_noise_and_fails_on_a_change_it_should_see(recorded, monkeypatch, profile):
    """The CUDA profiles are evaluated on the same precision's CPU outputs (no GPU here): the
    rule and the numbers are what is tested, the kernels are the nightly GPU job's."""
    record = golden.load(golden.golden_path(recorded, TOY), TOY)
    precision = profile.split("-")[1]

    def outputs():
        out, shape, layout = golden.run_candidate(TOY, SIZE, "cpu", precision, record.bn_stats)
        return golden.compare(record, out, shape, layout, profile, SIZE)

    clean = outputs()
    assert clean.ok, clean.message()
    monkeypatch.setenv(toy_golden_models.ENV, f"scale={SHOULD_SEE[precision]}")
    changed = outputs()
    assert not changed.ok, f"{profile} passes a planted change of {SHOULD_SEE[precision]}:\n{changed.message()}"
    assert f"[{profile}]: state_dict layout unchanged, only the numbers differ" in changed.message()
    assert f"x its own {precision} error" in changed.message()


def test_recording_refuses_a_model_too_noisy_for_its_budget(tmp_path, monkeypatch):
    """own error / max|reference| over tolerances.GOLDEN_MAX_NOISE is refused, unless an
    allowance with a reason says why; then it records."""
    monkeypatch.setattr(tolerances, "GOLDEN_MAX_NOISE", 1e-9)
    with pytest.raises(golden.GoldenNoiseError, match=r"toy_golden: refusing to record golden outputs: its own "
                                                      r"float32 error is logits .* of max\|reference\| \(limit 1e-09\)"):
        golden.update_golden(TOY, SIZE, tmp_path)
    assert not golden.golden_path(tmp_path, TOY).exists()
    allowance = tolerances.GoldenNoiseAllowance("toy_golden", 1e-3, reason="test: a toy allowed its noise")
    monkeypatch.setattr(tolerances, "GOLDEN_NOISE_ALLOWANCES", (allowance,))
    assert golden.update_golden(TOY, SIZE, tmp_path) == f"{TOY}: new"


def test_a_model_too_noisy_in_float32_at_every_form_is_recorded_and_compared_in_float64(tmp_path, monkeypatch):
    """The zoo's 27 refusals (13 LeViTs, deep SE-ResNets, halo nets: own float32 error over the
    gate even with per-channel statistics) get a golden all the same: their candidate runs in
    float64, where the only noise is the float32 rounding of the stored reference, so a change
    a hundred times smaller than float32 golden can see still fails."""
    real = golden._reference_and_noise

    def always_noisy(model, x, name, device):
        ref, out32, shape, noisy = real(model, x, name, device)
        return ref, out32, shape, {k: 1.0 for k in noisy}

    monkeypatch.setattr(golden, "_reference_and_noise", always_noisy)
    assert golden.update_golden(TOY, SIZE, tmp_path) == f"{TOY}: new"
    monkeypatch.setattr(golden, "_reference_and_noise", real)
    record = golden.load(golden.golden_path(tmp_path, TOY), TOY)
    assert record.compare_dtype == "float64" and record.meta["bn_form"] in golden.BN_FORMS
    assert all(0 < e <= 2 ** -24 * record.tensors[k].abs().max().item() for k, e in record.meta["err64"].items())
    result = golden.check_golden(TOY, SIZE, tmp_path)
    assert result.profile == "cpu-float64" and result.ok
    monkeypatch.setenv(toy_golden_models.ENV, "reorder")
    assert golden.check_golden(TOY, SIZE, tmp_path).ok
    monkeypatch.setenv(toy_golden_models.ENV, "scale=1e-5")
    with pytest.raises(AssertionError, match=r"(?s)\[cpu-float64\]: state_dict layout unchanged.*FAIL logits"):
        golden.check_golden(TOY, SIZE, tmp_path)
    monkeypatch.delenv(toy_golden_models.ENV)
    assert golden.update_golden(TOY, SIZE, tmp_path).startswith(f"{TOY}: unchanged within noise")


def test_a_float64_record_takes_the_cheapest_form_near_the_tamest():
    """Per-layer statistics leave seresnet152 at logits ~4e5, where its SE gates saturate and a
    1e-3 change of the last SE block is not seen even in float64 (q8mixed, logits 2.8: seen at
    1,150 x). Magnitudes measured on seresnet152, halonet_h1 and levit_512 (timm 1.0.31)."""
    assert golden.float64_form({"layer": 4.5e5, "q8mixed": 2.8, "q8": 2.6, "channel": 2.4, "float32": 2.4}) == "q8mixed"
    assert golden.float64_form({"layer": 2.1e9, "q8mixed": 1e10, "q8": 9.5e8, "channel": 7.1e6,
                                "float32": 2.4e3}) == "float32"
    assert golden.float64_form({"layer": 1.3e4, "q8mixed": 3.5e6, "q8": 4.6e5, "channel": 8.4e4,
                                "float32": 4.1e4}) == "layer"


def test_overrides_are_data():
    loose = tolerances.Tolerance(multiplier=1e3, floor=0.0)
    override = tolerances.ToleranceOverride("toy_*", "cpu-*", loose, reason="test", keys=("logits",))
    assert tolerances.golden_tolerance("toy_golden", "cpu-float32", "logits", (override,)) is loose
    assert tolerances.golden_tolerance("toy_golden", "cpu-float32", "features", (override,)) is tolerances.GOLDEN_PROFILES["cpu-float32"]
    assert tolerances.golden_tolerance("resnet18", "cuda-float32", "logits", (override,)) is tolerances.GOLDEN_PROFILES["cuda-float32"]


def test_suite_records_compares_and_reports(tmp_path, monkeypatch):
    args = ["-p", "tests.toys.toy_golden_models", "-m", "golden", "--models", TOY, "--golden-dir", str(tmp_path / "g")]
    missing = run_suites(args, tmp_path)
    assert missing.outcomes == {"test_golden[toy_golden]": "failed"}, missing.output
    assert "--update-golden" in missing.messages["test_golden[toy_golden]"]
    update = run_suites(args + ["--update-golden"], tmp_path)
    assert update.outcomes == {"test_golden[toy_golden]": "passed"}, update.output
    assert "golden update: 1 recorded, 1 new, 0 changed" in update.output
    monkeypatch.setenv(toy_golden_models.ENV, "scale")
    changed = run_suites(args, tmp_path)
    assert changed.outcomes == {"test_golden[toy_golden]": "failed"}, changed.output
    assert "only the numbers differ" in changed.messages["test_golden[toy_golden]"]


def test_structural_models_and_missing_cuda_skip_with_a_reason(tmp_path):
    args = ["-p", "tests.toys.toy_golden_models", "-m", "golden", "--models", TOY]
    over = run_suites(args + ["--max-params", "10"], tmp_path)
    assert over.outcomes == {"test_golden[toy_golden]": "skipped"}, over.output
    assert "> --max-params 10" in over.messages["test_golden[toy_golden]"]
    if not torch.cuda.is_available():
        cuda = run_suites(args + ["--device", "cuda"], tmp_path)
        assert cuda.outcomes == {"test_golden[toy_golden]": "skipped"}, cuda.output
        assert "CUDA is not available" in cuda.messages["test_golden[toy_golden]"]


def test_bn_statistics_are_stored_one_per_layer_and_reproduce_the_record(recorded):
    """The record's BN statistics are the layer averages, set in every channel before the
    reference was computed: the file holds one value per statistic and comparing with them
    reproduces the record."""
    record = golden.load(golden.golden_path(recorded, TOY), TOY)
    assert record.meta["bn_form"] == "layer"
    assert sorted(record.bn_stats) == ["bn.running_mean", "bn.running_var"]
    assert all(v.shape == (16,) and torch.equal(v, v[:1].expand(16)) for v in record.bn_stats.values())
    from safetensors import safe_open
    with safe_open(str(golden.golden_path(recorded, TOY)), framework="pt") as f:
        assert f.get_tensor("bn_stats").shape == (2,)
    assert golden.check_golden(TOY, SIZE, recorded).ok


@pytest.mark.parametrize("noisy_forms, form", [(1, "q8mixed"), (2, "q8"), (3, "channel")])
def test_a_model_too_noisy_with_cheaper_statistics_stores_finer_ones(tmp_path, monkeypatch, noisy_forms, form):
    """When a form leaves the model over the noise gate, the next one is tried: 8 bits per
    channel, then bfloat16 per channel; the reference is computed with exactly the values a
    comparison reads back."""
    real = golden._reference_and_noise
    calls = []

    def noisy_first(model, x, name, device):
        ref, out32, shape, noisy = real(model, x, name, device)
        calls.append(model.bn.running_var.clone())
        return ref, out32, shape, ({k: 1.0 for k in noisy} if len(calls) <= noisy_forms else noisy)

    monkeypatch.setattr(golden, "_reference_and_noise", noisy_first)
    assert golden.update_golden(TOY, SIZE, tmp_path) == f"{TOY}: new"
    record = golden.load(golden.golden_path(tmp_path, TOY), TOY)
    assert record.meta["bn_form"] == form and len(calls) == noisy_forms + 1
    var = record.bn_stats["bn.running_var"]
    assert not torch.equal(var, var[:1].expand(16))                     # per channel
    assert torch.equal(var, calls[-1])                                   # the values the reference used
    if form == "channel":
        assert torch.equal(var, var.to(torch.bfloat16).float())
    else:                                                      # 1/16 octaves from each other
        ratios = torch.log2(var.double() / var.double().min()) * 16
        assert torch.allclose(ratios, ratios.round(), atol=1e-3)
    monkeypatch.setattr(golden, "_reference_and_noise", real)
    assert golden.check_golden(TOY, SIZE, tmp_path).ok


def test_statistics_forms_round_trip_and_reject_a_truncated_file(tmp_path):
    stats = {"a.running_mean": torch.linspace(-3, 5, 7), "a.running_var": torch.logspace(-2, 2, 7),
             "b.running_mean": torch.zeros(4), "b.running_var": torch.ones(4)}
    for form in golden.BN_FORMS:
        encoded, decoded = golden._encoded(stats, form)
        assert set(decoded) == set(stats) and all(decoded[k].shape == stats[k].shape for k in stats)
        record = golden.Golden("toy", {"logits": torch.zeros(2, 3)}, {"format": golden.FORMAT, "bn_form": form,
                                                                      "err32": {}, "err_bf16": {}, "err_fp16": {}},
                               decoded, encoded)
        golden.save(record, tmp_path / f"{form}.safetensors")
        back = golden.load(tmp_path / f"{form}.safetensors", "toy").bn_stats
        assert all(torch.equal(back[k], decoded[k]) for k in stats), form   # read back bit for bit
        with pytest.raises(ValueError, match="holds"):
            golden.decode_statistics({**encoded[0], "bn_stats": encoded[0]["bn_stats"][:-1]}, encoded[1], form)
    q8 = golden._encoded(stats, "q8")[1]
    assert ((q8["a.running_var"] / stats["a.running_var"]).log2().abs() <= 1 / 32 + 1e-6).all()  # half a step
    assert ((q8["a.running_mean"] - stats["a.running_mean"]).abs() <= stats["a.running_mean"].std() / 32 + 1e-6).all()


def test_missing_only_records_new_models_and_compares_recorded_ones(tmp_path, monkeypatch):
    args = ["-p", "tests.toys.toy_golden_models", "-m", "golden", "--models", TOY, "--golden-dir", str(tmp_path / "g"),
            "--update-golden", "--golden-missing-only"]
    first = run_suites(args, tmp_path)
    assert first.outcomes == {"test_golden[toy_golden]": "passed"}, first.output
    assert "1 recorded, 1 new" in first.output
    monkeypatch.setenv(toy_golden_models.ENV, "scale")
    again = run_suites(args, tmp_path)   # compared, not re-recorded: the planted change fails as a mismatch
    assert again.outcomes == {"test_golden[toy_golden]": "failed"}, again.output
    assert "only the numbers differ" in again.messages["test_golden[toy_golden]"]


@pytest.mark.slow
def test_seresnet152_compared_in_float64_sees_a_change_of_its_last_se_block(tmp_path, monkeypatch):
    """The real case behind float64_form: seresnet152 is over the float32 gate at every BN form.
    With the form float64_form picks, a 1e-3 change of the last SE block's fc2 fails; with the
    cheapest form (per layer: logits ~4e5, saturated gates) the same change passes unseen."""
    from harness.models import build
    name = "seresnet152"
    size = build.choose_input_size(name, build.create(name, device="meta"))
    built = golden._built

    def planted(model_name, device):
        model = built(model_name, device)
        model.layer4[2].se.fc2.register_forward_hook(lambda m, i, out: out * (1 + 1e-3))
        return model

    def sees_the_change(directory) -> bool:
        monkeypatch.setattr(golden, "_built", planted)
        try:
            golden.check_golden(name, size, directory)
            return False
        except AssertionError:
            return True
        finally:
            monkeypatch.setattr(golden, "_built", built)

    golden.update_golden(name, size, tmp_path / "chosen")
    record = golden.load(golden.golden_path(tmp_path / "chosen", name), name)
    assert record.compare_dtype == "float64" and record.meta["bn_form"] != "layer"
    assert golden.check_golden(name, size, tmp_path / "chosen").ok
    assert sees_the_change(tmp_path / "chosen")
    monkeypatch.setattr(golden, "BN_FORMS", ("layer",))
    golden.update_golden(name, size, tmp_path / "layer")
    assert golden.load(golden.golden_path(tmp_path / "layer", name), name).compare_dtype == "float64"
    assert not sees_the_change(tmp_path / "layer")
