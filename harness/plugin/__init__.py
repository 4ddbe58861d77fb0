"""pytest wiring: options, turning the selection into parametrized tests (collection and
the named parametrizers), and the sweep machinery (shards, model-grouped scheduling,
crash attribution, the memory guard)."""
