"""Model correctness regression harness for timm.

The library behind the pytest suites: which models to check and how (tables, not
if-chains), deterministic weights and inputs, checkpoint files in timm's native
format, comparisons whose failure messages say what differed, and reports.
"""
__version__ = "0.1.0"
