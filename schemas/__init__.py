"""Machine-readable contracts that leave the process, generated from the code."""
