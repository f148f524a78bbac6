"""Repository-root conftest: the plugin itself is loaded through its ``pytest11`` entry point
(``pip install -e .``), so ``pytest --env staging -m gate`` here runs the built-in suites against the
embedded reference deployment that ``deploygate.toml`` launches."""

collect_ignore = ["bench", "build", "dist"]
