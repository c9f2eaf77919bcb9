// Evaluation: compares predicted Hamiltonians with DFT references — errors by block kind, element pair and shell pair, band errors, parity plots.
