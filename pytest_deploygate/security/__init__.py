"""Security checks: code scan (bandit), dependency audit (pip-audit; safety when configured) and the
HTTP posture of the deployed API and frontend. Scanners run as subprocesses."""
