"""pytest plugin for the harness's tests: registers the toy models and two known issues
over them, one that still fails (-> xfailed) and one that no longer does (-> must fail)."""
from harness.registry.known_issues import KnownIssue, register_known_issues
from tests.toys import toy_models  # noqa: F401 - registers the toys

PLANTED = (
    KnownIssue("toy_nan_output", "create", "", reason="planted: NaN in forward", variant="*-scratch-default"),
    KnownIssue("toy_ok", "create", "", reason="planted: no longer fails", variant="*-scratch-default"),
    KnownIssue("toy_ignores_num_classes", "create", "", reason="planted: covers another error only",
               variant="*-scratch-num_classes_7", match="some other error"),
)
register_known_issues(*PLANTED)
