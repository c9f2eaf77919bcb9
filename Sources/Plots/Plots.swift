// Plots: dependency-free SVG charts (lines, scatter/parity, learning curves) shared by every module that draws.
