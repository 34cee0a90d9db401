"""Report: deterministic figures and a self-contained HTML page a reviewer reads."""
