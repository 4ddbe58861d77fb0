"""What timm itself claims to support, as data: the model filters its own
``tests/test_models.py`` excludes from the TorchScript and FX tests. A model a release
does not exclude is one that release says scripts (``torch.jit.script`` under
``set_scriptable(True)``) or traces (``timm.models.create_feature_extractor``), so the
transforms family holds it to that claim; an excluded model is not collected.

The lists are read from each release's ``tests/test_models.py`` (the mirror's release
tags, or the sdist where a release has no tag): ``EXCLUDE_FILTERS`` (the branch that runs
outside GitHub Actions: the Actions branch only drops models too big for its runners),
``EXCLUDE_JIT_FILTERS`` and ``EXCLUDE_FX_FILTERS``. A candidate that ships its tests (a
checkout) is read from its own file instead (harness.models.claims); a release newer than
the last row uses the last row until it is added here."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SupportClaim:
    timm: str                        # PEP 440 specifier set of the releases this row describes
    exclude: tuple[str, ...]         # EXCLUDE_FILTERS: excluded from every model test
    jit_exclude: tuple[str, ...]     # EXCLUDE_JIT_FILTERS: not claimed scriptable
    fx_exclude: tuple[str, ...]      # EXCLUDE_FX_FILTERS: not claimed traceable
    source: str


_JIT_1_0_25 = ("hiera_*", "*naflex*", "*_7b_*", "hrnet*", "dpn*", "densenet*", "selecsls*")

CLAIMS: tuple[SupportClaim, ...] = (
    SupportClaim("<1.0.3", ("*enormous*",), (), ("vit_gi*",), "tests/test_models.py at tag v0.9.16"),
    SupportClaim(">=1.0.3,<1.0.16", ("*enormous*",), ("hiera_*",), ("vit_gi*", "hiera*"),
                 "tests/test_models.py at tags v1.0.3 .. v1.0.15 (sdists for 1.0.10-1.0.12), identical"),
    SupportClaim(">=1.0.16,<1.0.20", ("*enormous*",), ("hiera_*", "*naflex*"), ("vit_gi*", "hiera*"),
                 "tests/test_models.py at tags v1.0.16 .. v1.0.19"),
    SupportClaim(">=1.0.20,<1.0.25", ("*enormous*", "*_7b_*"), ("hiera_*", "*naflex*", "*_7b_*"),
                 ("vit_gi*", "hiera*"), "tests/test_models.py at tags v1.0.20 .. v1.0.24"),
    SupportClaim(">=1.0.25,<1.0.27", ("*enormous*", "*_7b_*"), _JIT_1_0_25, ("vit_gi*", "hiera*"),
                 "tests/test_models.py at tags v1.0.25, v1.0.26 (hrnet, dpn, densenet, selecsls dropped from "
                 "TorchScript with the torch.jit deprecation clean-up, commit bdab30b0)"),
    SupportClaim(">=1.0.27,<1.0.30", ("*enormous*", "*_7b_*"), _JIT_1_0_25 + ("gemma4_vit*",),
                 ("vit_gi*", "hiera*", "gemma4_vit*"), "tests/test_models.py at tags v1.0.27, v1.0.28, sdist 1.0.29"),
    SupportClaim("==1.0.30", ("*enormous*", "*_5b_*", "*_7b_*"),
                 ("hiera_*", "*naflex*", "*_5b_*", "*_7b_*", "hrnet*", "dpn*", "densenet*", "selecsls*", "gemma4_vit*"),
                 ("vit_gi*", "hiera*", "gemma4_vit*"), "tests/test_models.py in the timm 1.0.30 sdist"),
    SupportClaim(">=1.0.31", ("*enormous*", "*_5b_*", "*_7b_*"),
                 ("hiera_*", "*naflex*", "*_5b_*", "*_7b_*", "hrnet*", "densenet*", "selecsls*", "gemma4_vit*"),
                 ("vit_gi*", "hiera*", "gemma4_vit*"),
                 "tests/test_models.py in the timm 1.0.31 sdist (dpn scriptable again)"),
)
