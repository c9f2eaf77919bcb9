// Hybrid (stage 1 + stage 2) inference on large structures, layer by layer over chunks of atoms
// (the machinery and stage 1's passes are in LayerwiseInference.swift). Stage 1 runs all its
// layers over the chunks; stage 2 then reads its final node and edge features x, e (kept whole,
// [N or E, hidden]) and keeps its own node and edge states h [N, width], z [E, width]:
//   1. embedding pass: each chunk embeds its atoms and the edges entering them (stage 1's
//      baseline blocks of those rows made on the spot from x and e by stage 1's heads);
//   2. one pass per Transformer block: each chunk first applies the previous block's edge update
//      to the edges entering it (it needs that block's node output at both ends, complete after
//      the previous pass), then attends over those edges for its atoms — a node's attention
//      reduces over its incoming edges in edge order, as the whole-structure pass does;
//   3. heads, pipelined with the last pass: each owned block pair gets the last block's edge
//      update, stage 1's baseline and stage 2's ΔH, H = H₁ + ΔH, averaged with its transpose.
// Every atom and edge is evaluated once per pass; memory is the model, x and e, h (twice) and z,
// and one chunk's activations per worker. Stage 2's geometry (Y_l up to its sh_lmax, its radial
// basis) is computed per chunk for the chunk's edges.
import Autograd
import Foundation
import Linalg
import Structures

extension HybridHamiltonianModel {
    /// Predicts H₁ + ΔH of one structure layer by layer over chunks of `chunkAtoms` atoms on up to
    /// `workers` threads, like `HamiltonianModel.predictLayerwise` (the same emission order and
    /// progress in chunk passes: stage 1's layers, stage 2's embedding and blocks, heads).
    @_specialize(where T == Float)
    public func predictLayerwise(_ graph: StructureGraph, chunkAtoms: Int, workers: Int,
                                 progress: ((Int, Int) -> Void)? = nil,
                                 emit: ([PredictedBlock]) throws -> Void) throws {
        let base = ExecutionContext.current.withoutGradients
        let n = graph.structure.atomCount
        guard n > 0 else { return }
        let s2 = stage2, blocks = stage2.blocks, d = stage2.config.width
        let chunks = AtomChunks(graph, chunkAtoms: chunkAtoms)
        let runner = ChunkRunner(chunks, workers: workers, context: base,
                                 passes: stage1.interactions.count + blocks.count + 2, progress: progress)
        // Stage 1, all layers; its batch (the whole structure's edge geometry) is released after.
        let (x, ef): (FeatureRows<T>, FeatureRows<T>) = try base.run {
            let s1 = try Stage1Layerwise(stage1, graph: graph, chunks: chunks)
            try s1.run(layers: 0 ..< s1.layerCount, on: runner)
            return (s1.nodes, s1.edges)
        }
        let sources = chunks.sources, targets = chunks.targets
        var h = FeatureRows<T>(rows: n, width: d), hOut = FeatureRows<T>(rows: n, width: d)
        let z = FeatureRows<T>(rows: sources.count, width: d)
        let z1 = graph.structure.atomicNumbers
        func offsiteGroup(_ k: Int) -> BlockGroup { BlockGroup(onsite: false, zi: z1[sources[k]], zj: z1[targets[k]]) }
        /// Rows of `list` by group (positions in `list`), groups in order.
        func byGroup(_ list: [Int], _ group: (Int) -> BlockGroup) -> [(BlockGroup, [Int])] {
            var rows: [BlockGroup: [Int]] = [:]
            for (r, k) in list.enumerated() { rows[group(k), default: []].append(r) }
            return rows.keys.sorted().map { ($0, rows[$0]!) }
        }
        func geometry(_ edges: [Int]) throws -> Stage2Geometry<T> {
            try Stage2Geometry(vectors: edges.map { graph.edges[$0].vector }, for: s2)
        }

        /// Embedding of chunk c's atoms (into `hOut`) and of the edges entering them (into `z`).
        func embed(_ c: Int) throws {
            let range = chunks.ranges[c], ce = chunks.entering[c]
            let xc = try x.gather(range)
            var nodePre = try s2.nodeInput(xc)
            for (g, rows) in byGroup(Array(range), { BlockGroup(onsite: true, zi: z1[$0], zj: z1[$0]) }) where s2.groups[g] != nil {
                let local = try RowIndex(rows, rowCount: range.count)
                let b = try s2.normalizedBaseline(g, try stage1.headBlocks(g, try xc.gatherRows(local)))
                nodePre = try nodePre + s2.groupInput(g, baseline: b, harmonics: nil).scatterAdd(local)
            }
            hOut.store(try s2.embedNodes(nodePre), at: range)
            guard !ce.isEmpty else { return }
            let e = try ef.gather(ce)
            let geo = try geometry(ce)
            var edgePre = try s2.edgeInput(edge: e, source: try x.gather(ce.map { sources[$0] }),
                                           target: try x.gather(ce.map { targets[$0] }), geometry: geo)
            for (g, rows) in byGroup(ce, offsiteGroup) where s2.groups[g] != nil {
                let local = try RowIndex(rows, rowCount: ce.count)
                let b = try s2.normalizedBaseline(g, try stage1.headBlocks(g, try e.gatherRows(local)))
                edgePre = try edgePre + s2.groupInput(g, baseline: b, harmonics: try geo.harmonics.gatherRows(local)).scatterAdd(local)
            }
            z.store(try s2.embedEdges(edgePre), at: ce)
        }
        /// Block b for chunk c: the edges entering it get block b − 1's edge update (from `h`, that
        /// block's node output), then its atoms attend over them (into `hOut`).
        func attend(_ b: Int, _ c: Int) throws {
            let range = chunks.ranges[c], ce = chunks.entering[c]
            var zc = try z.gather(ce)
            if b > 0, !ce.isEmpty {
                zc = try blocks[b - 1].updateEdges(zc, source: try h.gather(ce.map { sources[$0] }), target: try h.gather(ce.map { targets[$0] }))
                z.store(zc, at: ce)
            }
            let local = try RowIndex(ce.map { targets[$0] - range.lowerBound }, rowCount: range.count)
            hOut.store(try blocks[b].attend(nodes: try h.gather(range), sources: try h.gather(ce.map { sources[$0] }), edges: zc, target: local), at: range)
        }
        let finalPass: (Int) throws -> Void = blocks.isEmpty ? embed : { c in try attend(blocks.count - 1, c) }
        try base.run {
            if !blocks.isEmpty {
                try runner.forEachChunk(embed)
                swap(&h, &hOut)
                for b in 0 ..< blocks.count - 1 {
                    try runner.forEachChunk { c in try attend(b, c) }
                    swap(&h, &hOut)
                }
            }
        }
        // Heads, pipelined with the final pass (which writes the final node states into `hOut`).
        /// H₁ + ΔH (unsymmetrised) of rows of one group.
        func raw(_ g: BlockGroup, _ rows: [Int]) throws -> [T] {
            let stage1Features = try (g.onsite ? x : ef).gather(rows)
            let b1 = try stage1.headBlocks(g, stage1Features)
            guard s2.groups[g] != nil else { return b1.data }
            let baseline = try s2.normalizedBaseline(g, b1)
            let delta: Tensor<T>
            if g.onsite {
                delta = try s2.readout(g, features: try hOut.gather(rows), baseline: baseline, equivariant: [stage1Features], harmonics: nil)
            } else {
                var features = try z.gather(rows)
                if let last = blocks.last {
                    features = try last.updateEdges(features, source: try hOut.gather(rows.map { sources[$0] }),
                                                    target: try hOut.gather(rows.map { targets[$0] }))
                }
                delta = try s2.readout(g, features: features, baseline: baseline,
                                       equivariant: [stage1Features, try x.gather(rows.map { sources[$0] }), try x.gather(rows.map { targets[$0] })],
                                       harmonics: try geometry(rows).harmonics)
            }
            return try (b1 + delta).data
        }
        try runner.pipeline(finalPass: finalPass, blocks: { c in try chunks.blocks(of: c, graph: graph, raw: raw) }, emit: emit)
    }
}
