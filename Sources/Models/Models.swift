// Models: the learnable networks — stage 1 (SO(3)-equivariant baseline) and stage 2 (graph Transformer refinement).
