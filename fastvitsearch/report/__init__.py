"""Reports: self-contained HTML and PNG figures computed from a sweep's results table."""
