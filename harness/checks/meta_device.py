"""How a structural check (over --max-params, on the meta device) gives up: only where the
meta device cannot run the model (harness.models.meta_limits), and then with a skip that
says what was checked before; any other exception fails the check as on the CPU."""
from __future__ import annotations

import pytest

from harness.models.meta_limits import is_meta_limitation


def skip_on_meta_limit(exc: BaseException, what: str, checked: str) -> None:
    """Skip when ``exc`` is a meta-device limitation; return otherwise (the caller re-raises)."""
    if is_meta_limitation(exc):
        pytest.skip(f"{what} cannot run on the meta device ({type(exc).__name__}: {str(exc)[:200]}); "
                    f"{checked} were checked")
