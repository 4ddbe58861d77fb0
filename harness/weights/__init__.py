"""Tensors the harness makes itself: deterministic weights and inputs, the deterministic
model of each name (cached per worker), checkpoint files in each family's native layout,
cross-version artifacts, and old timm releases installed beside the shared torch."""
