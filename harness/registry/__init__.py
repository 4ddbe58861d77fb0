"""Data, and only data: the check families, the model-family exceptions, the known issues,
the smoke set, the tolerances, the checkpoint-family rules and the test-id grammar.

Nothing here imports the rest of the harness (the layering test enforces it), so a
record can be read, reviewed and extended without running a model. Tests extend a table
through its ``register_*`` function, never by rebinding a module global."""
