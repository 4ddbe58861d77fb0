"""timm models as the harness sees them: building (CPU or meta device), the selection of
models a run covers, facts and capabilities discovered from each model (cached), head and
pooling introspection, and which checkpoint family each pretrained tag is stored in."""
