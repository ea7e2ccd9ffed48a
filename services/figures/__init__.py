"""mlpower.figures: the MLPerf Power paper's figures from the public results, run figures, rebuild API."""
