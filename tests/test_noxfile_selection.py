"""The compat session's selection (noxfile.py): without --models the smoke set; with
`--models smoke,affected:previous` also the models affected since the previous release; 'previous' is resolved once (the same
rule as the baselines) and the export under the baseline release gets explicit names."""
from __future__ import annotations

import importlib.util
import json

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("harness_noxfile", ROOT / "noxfile.py")
noxfile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(noxfile)


class FakeSession:
    """Records the commands; answers `releases --previous` and writes affected.json."""

    def __init__(self, affected: list[str]):
        self.commands: list[tuple] = []
        self.affected = affected

    def run(self, *args, silent: bool = False, **kwargs):
        self.commands.append(args)
        if args[:4] == ("python", "-m", "harness", "releases") and args[4] == "--previous":
            return "1.0.30\n"
        if args[:4] == ("python", "-m", "harness", "affected"):
            path = args[args.index("--json") + 1]
            with open(path, "w") as f:
                json.dump({"affected": {n: [] for n in self.affected}}, f)
        return ""

    def log(self, *args):
        pass


def test_default_is_smoke_and_change_aware_adds_affected_since_previous():
    assert noxfile.DEFAULT_COMPAT_MODELS == "smoke"
    assert noxfile.CHANGE_AWARE_MODELS == "smoke,affected:previous"
    session = FakeSession(["convnext_atto", "mixer_s16_224"])
    pytest_models, export_models = noxfile._resolve_affected(session, noxfile.CHANGE_AWARE_MODELS, "", "1.0.31")
    assert pytest_models == "smoke,affected:1.0.30"
    assert export_models == "smoke,convnext_atto,mixer_s16_224"
    [affected_cmd] = [c for c in session.commands if c[:4] == ("python", "-m", "harness", "affected")]
    assert affected_cmd[affected_cmd.index("--baseline") + 1] == "1.0.30"
    assert affected_cmd[affected_cmd.index("--candidate") + 1] == "installed"


def test_explicit_models_pass_through_and_replace_the_default():
    session = FakeSession([])
    assert noxfile._resolve_affected(session, "hrnet*,resnet18", "", "1.0.31") == ("hrnet*,resnet18", "hrnet*,resnet18")
    assert session.commands == []
    args = noxfile._without_option(["--models", "a", "-m", "create", "--models=b", "-x"], "--models")
    assert args == ["-m", "create", "-x"]
