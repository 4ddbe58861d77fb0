"""Toy timm models, registered only by the harness's own tests, each planting one kind of
bug a check must catch (``toy_ok``-style names are the correct controls). Each module
registers its toys on import and also works as a pytest plugin: ``-p tests.toys.<module>``.
``registry.register_toys`` is the one registration helper they share."""
