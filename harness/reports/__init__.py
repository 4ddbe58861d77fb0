"""What a run tells its reader: per-test results (results.json), the end-of-run summary,
the models x families matrix (Markdown and HTML), diffs between runs, the expected-status
gate, progress lines, and the golden-update and benchmark CSV summaries."""
