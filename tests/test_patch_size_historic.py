"""Historic: timm 0.9.16 returned from the ViT checkpoint filter before resampling when it
saw an OpenAI/OpenCLIP-layout file, so a changed patch_size failed to load
OpenCLIP tags of vit_base_patch16_clip_224 while its timm-hosted tags (openai, ...) loaded.
Fixed in 1.0.3 (the filter converts, then resamples). Two tags keep the run short: laion2b
(an OpenCLIP hub file in 0.9.16 and 1.0.3) and openai (a timm-native hub file), patch_size
changed only (the full three geometries run in the must-show command of README.md)."""
from __future__ import annotations

import pytest

from tests.helpers import run_suites
from tests.test_historic import timm_release

# slow: runs real timm releases (pip-installed) through the suites; `nox -s historic` runs them
pytestmark = pytest.mark.slow

ARGS = ["-m", "patch_size", "--models", "vit_base_patch16_clip_224", "-k",
        "(clip_224.laion2b- or clip_224.openai-) and patch_size_32"]
T = "test_patch_size[vit_base_patch16_clip_224.{}]"
OPENCLIP = {T.format("laion2b-open_clip-patch_size_32")}
OPENAI = {T.format("openai-timm-patch_size_32")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def run(version: str | None):
        if version not in cache:
            path = [timm_release(version)] if version else []
            cache[version] = run_suites(ARGS, tmp_path_factory.mktemp(version or "newest"), path)
        return cache[version]
    return run


def test_openclip_tags_fail_patch_size_on_0_9_16(runs):
    run = runs("0.9.16")
    assert set(run.outcomes) == OPENCLIP | OPENAI, run.output
    assert run.failed() == OPENCLIP, run.output
    message = run.messages[T.format("laion2b-open_clip-patch_size_32")]
    assert "from a open_clip checkpoint raised RuntimeError" in message
    assert "size mismatch for patch_embed.proj.weight" in message


@pytest.mark.parametrize("version", ["1.0.3", None], ids=["1.0.3", "newest"])
def test_all_pass_after_the_fix(runs, version):
    run = runs(version)
    assert run.returncode == 0, run.output
    assert run.failed() == set() and set(run.outcomes.values()) == {"passed"}, run.output
    if version == "1.0.3":  # the OpenCLIP family is still what the laion2b tag loads there
        assert set(run.outcomes) == OPENCLIP | OPENAI
