"""The checks, one module per check family (named as its pytest marker), plus the shared
pieces every family uses: ``compare`` (assertions whose messages say what differed) and
``numerics`` (the one error-budget rule, the float64 reference, BN calibration)."""
