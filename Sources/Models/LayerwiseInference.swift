// Stage-1 inference on structures too large for one forward pass (10³–10⁵ atoms): the network is
// evaluated layer by layer over chunks of atoms, a chunk being a range of atoms together with every
// edge whose source atom is among them. Between layers only the node features [N, hidden] and the
// edge features [E, hidden] of the whole structure are kept — never the products, radial weights
// or other activations of more than one chunk per worker — and every atom and edge is evaluated
// once per layer (a tiled evaluation with halos of the receptive field evaluates each atom of a
// 10⁴-atom structure about 2.6 times). The chunks of one layer are independent: each reads the
// previous layer's features and writes only its own atoms' and edges' rows, so they run on the
// workers, one thread each. The heads then turn each chunk's features into blocks, averaged with
// their transposed partners as `GraphBatch.assembleOperators` does, and hand them over chunk by
// chunk, in chunk order.
//
// Every row goes through the operations of `callAsFunction` in the same order, and a node's
// messages are summed over its edges in the batch's edge order, so the blocks equal the
// whole-structure forward pass up to how the matrix products round for a different number of rows
// (LayerwiseInferenceTests bounds the difference).
import Autograd
import Foundation
import Linalg
import SO3
import Structures

/// One predicted block (internal orbital order, eV), row-major rows × cols.
public struct PredictedBlock: Sendable {
    public let key: BlockKey
    public let rows: Int, cols: Int
    public let values: [Double]
    public init(key: BlockKey, rows: Int, cols: Int, values: [Double]) {
        self.key = key; self.rows = rows; self.cols = cols; self.values = values
    }
}

extension HamiltonianModel {
    /// Predicts H of one structure layer by layer over chunks of `chunkAtoms` atoms on up to
    /// `workers` threads (each chunk on one thread). `emit` receives each chunk's blocks — its
    /// atoms' on-site blocks, then the blocks of its edges in graph order — in chunk order, one
    /// call at a time (on another thread while the next chunks compute); `progress` (done, total)
    /// counts chunk passes (layers + heads).
    @_specialize(where T == Float)
    public func predictLayerwise(_ graph: StructureGraph, chunkAtoms: Int, workers: Int,
                                 progress: ((Int, Int) -> Void)? = nil,
                                 emit: ([PredictedBlock]) throws -> Void) throws {
        let base = ExecutionContext.current.withoutGradients
        let batch = try base.run { try GraphBatch<T>([graph], config: config) }
        let n = batch.nodeCount, edgeCount = batch.edgeCount, hdim = hiddenIrreps.dim
        guard n > 0 else { return }
        let sources = batch.source.indices, targets = batch.target.indices
        // Chunks: atom ranges, with the edges leaving them in edge order.
        let size = max(1, chunkAtoms)
        let ranges = stride(from: 0, to: n, by: size).map { $0 ..< min(n, $0 + size) }
        var chunkEdges = [[Int]](repeating: [], count: ranges.count)
        for (k, s) in sources.enumerated() { chunkEdges[s / size].append(k) }
        let workerCount = max(1, min(workers, ranges.count))
        let inner = base.with(threads: max(1, base.threads / workerCount))
        let steps = ranges.count * (interactions.count + 1)
        var done = 0

        // Features of the whole structure between layers.
        let nodes = UnsafeMutableBufferPointer<T>.allocate(capacity: n * hdim)
        let nextNodes = UnsafeMutableBufferPointer<T>.allocate(capacity: n * hdim)
        let edges = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, edgeCount * hdim))
        defer { nodes.deallocate(); nextNodes.deallocate(); edges.deallocate() }
        let embedded = try base.run { try nodeEmbedding(batch.species) }
        _ = embedded.data.withUnsafeBufferPointer { memcpy(nodes.baseAddress!, $0.baseAddress!, n * hdim * MemoryLayout<T>.stride) }

        /// Runs `body(chunk)` for every chunk on the workers; rethrows the first failing chunk's error.
        func forEachChunk<R>(_ body: (Int) throws -> R) throws -> [R] {
            let results = UnsafeMutableBufferPointer<Result<R, Error>?>.allocate(capacity: ranges.count)
            results.initialize(repeating: nil)
            defer { results.deinitialize(); results.deallocate() }
            ConcurrentLoop.perform(iterations: workerCount) { w in
                inner.run {
                    for c in stride(from: w, to: ranges.count, by: workerCount) { results[c] = Result { try body(c) } }
                }
            }
            return try results.map { try $0!.get() }
        }
        func rows(_ store: UnsafeMutableBufferPointer<T>, _ indices: some Collection<Int>) throws -> Tensor<T> {
            var out: [T] = uninitializedArray(count: indices.count * hdim)
            out.withUnsafeMutableBufferPointer { o in
                for (r, k) in indices.enumerated() { (o.baseAddress! + r * hdim).update(from: store.baseAddress! + k * hdim, count: hdim) }
            }
            return try Tensor(out, shape: [indices.count, hdim])
        }
        func store(_ t: Tensor<T>, into buffer: UnsafeMutableBufferPointer<T>, _ indices: some Collection<Int>) {
            t.data.withUnsafeBufferPointer { v in
                for (r, k) in indices.enumerated() { (buffer.baseAddress! + k * hdim).update(from: v.baseAddress! + r * hdim, count: hdim) }
            }
        }

        let normalizer = T(1 / (config.avgNeighbors ?? 1).squareRoot())
        /// Layer `layerIndex` for chunk c: reads `x` (the previous layer's node features) and its
        /// edges' previous features, writes its edges' new features in place and its atoms' new
        /// node features into `nextNodes`.
        func layerPass(_ layerIndex: Int, _ c: Int, _ x: Tensor<T>) throws {
            let layer = interactions[layerIndex]
            let range = ranges[c], ce = chunkEdges[c]
            var aggregated = Tensor<T>(zeros: [range.count, hdim])
            if !ce.isEmpty {
                let edgeRows = try RowIndex(ce, rowCount: edgeCount)
                let src = try RowIndex(ce.map { sources[$0] }, rowCount: n)
                let dst = try RowIndex(ce.map { targets[$0] }, rowCount: n)
                let harmonics = try batch.harmonics.gatherRows(edgeRows), radial = try batch.radial.gatherRows(edgeRows)
                var e: Tensor<T>
                if layerIndex == 0 {
                    let ends = try Tensor.concat([try batch.species.gatherRows(src), try batch.species.gatherRows(dst)], axis: 1)
                    e = try edgeEmbedLinear(try edgeEmbedProduct(ends, harmonics, weights: try edgeEmbedRadial(radial)))
                } else {
                    e = try rows(edges, ce)
                }
                let mixed = try layer.edgeMix(try Tensor.concat([try x.gatherRows(src), try x.gatherRows(dst), e], axis: 1))
                let product = try layer.edgeProduct(mixed, harmonics, weights: try layer.edgeRadial(radial))
                let update = try layer.edgeGate(try layer.edgeOut(product))
                e = try layer.edgeNorm(try e + update)
                store(e, into: edges, ce)
                let local = try RowIndex(ce.map { sources[$0] - range.lowerBound }, rowCount: range.count)
                aggregated = try layer.nodeMessage(e).scatterAdd(local) * normalizer
            }
            let xc = try x.gatherRows(try RowIndex(Array(range), rowCount: n))
            let update = try layer.nodeGate(try layer.nodeMix(try Tensor.concat([xc, aggregated], axis: 1)))
            store(try layer.nodeNorm(try xc + update), into: nextNodes, range)
        }
        let last = interactions.count - 1
        for layerIndex in 0 ..< last {
            let x = try rows(nodes, 0 ..< n)
            _ = try forEachChunk { c in try layerPass(layerIndex, c, x) }
            (nodes.baseAddress!).update(from: nextNodes.baseAddress!, count: n * hdim)
            done += ranges.count
            progress?(done, steps)
        }

        // Heads: blocks from the last layer's features (node features in `nextNodes`).
        let atomicNumbers = batch.atomicNumbers
        var edgeOfKey: [BlockKey: Int] = [:]
        edgeOfKey.reserveCapacity(edgeCount)
        for (k, e) in graph.edges.enumerated() { edgeOfKey[e.key] = k }
        let orbitals = (0 ..< n).map { graph.structure.shells(ofAtom: $0).orbitalCount }
        /// Raw (unsymmetrised) blocks of the given rows (node or edge indices) of one group.
        func headBlocks(_ group: BlockGroup, _ indices: [Int], from buffer: UnsafeMutableBufferPointer<T>) throws -> [T] {
            guard let h = heads[group] else { throw ModelError.badInput("no head for block group \(group)") }
            let y = try (try h.linear(try rows(buffer, indices)) * h.scale) + h.shift
            return try y.matmul(h.compose).data
        }
        func blocks(of c: Int) throws -> [PredictedBlock] {
            let range = ranges[c], ce = chunkEdges[c]
            var out: [PredictedBlock] = []
            out.reserveCapacity(range.count + ce.count)
            // On-site blocks by element (their own transpose is their Hermitian partner).
            var onsite: [Int: [Int]] = [:]
            for a in range { onsite[atomicNumbers[a], default: []].append(a) }
            var onsiteValues = [Int: (rows: [T], offset: [Int: Int], width: Int)]()
            for (z, atoms) in onsite {
                let values = try headBlocks(BlockGroup(onsite: true, zi: z, zj: z), atoms, from: nextNodes)
                onsiteValues[z] = (values, Dictionary(uniqueKeysWithValues: atoms.enumerated().map { ($1, $0) }), values.count / atoms.count)
            }
            for a in range {
                let (values, offset, width) = onsiteValues[atomicNumbers[a]]!
                let start = offset[a]! * width, m = orbitals[a]
                var block = [Double](repeating: 0, count: m * m)
                for r in 0 ..< m { for q in 0 ..< m {
                    block[r * m + q] = 0.5 * (Double(values[start + r * m + q]) + Double(values[start + q * m + r]))
                } }
                out.append(PredictedBlock(key: BlockKey(shift: .zero, i: a, j: a), rows: m, cols: m, values: block))
            }
            // Off-site: the chunk's edges and their transposed partners, by group.
            var needed: [BlockGroup: [Int]] = [:]
            var partner = [Int](repeating: -1, count: ce.count)
            for (r, k) in ce.enumerated() {
                let e = graph.edges[k]
                needed[BlockGroup(onsite: false, zi: atomicNumbers[e.i], zj: atomicNumbers[e.j]), default: []].append(k)
                if let p = edgeOfKey[e.key.transposed] {
                    partner[r] = p
                    needed[BlockGroup(onsite: false, zi: atomicNumbers[e.j], zj: atomicNumbers[e.i]), default: []].append(p)
                }
            }
            var location: [Int: (group: BlockGroup, row: Int)] = [:]
            var groupValues: [BlockGroup: (values: [T], width: Int)] = [:]
            for (g, list) in needed {
                var unique: [Int] = []
                for k in list where location[k] == nil { location[k] = (g, unique.count); unique.append(k) }
                let values = try headBlocks(g, unique, from: edges)
                groupValues[g] = (values, values.count / unique.count)
            }
            func raw(_ k: Int) -> (values: [T], start: Int) {
                let (g, row) = location[k]!
                let v = groupValues[g]!
                return (v.values, row * v.width)
            }
            for (r, k) in ce.enumerated() {
                let e = graph.edges[k]
                let ni = orbitals[e.i], nj = orbitals[e.j]
                let (values, start) = raw(k)
                var block = (0 ..< ni * nj).map { Double(values[start + $0]) }
                if partner[r] >= 0 {
                    let (pv, ps) = raw(partner[r])
                    for i in 0 ..< ni { for j in 0 ..< nj { block[i * nj + j] = 0.5 * (block[i * nj + j] + Double(pv[ps + j * ni + i])) } }
                }
                out.append(PredictedBlock(key: e.key, rows: ni, cols: nj, values: block))
            }
            return out
        }
        // The last layer and the heads run as one pipeline, so that writing the blocks (one
        // thread: HDF5) overlaps the network instead of following it. Each wave runs, at once:
        // `emit` of the blocks made in the previous wave (first iteration), the last layer for the
        // next chunks, and the heads of the chunks whose edges and transposed partners all have
        // their final features (chunk c needs every chunk up to ready[c] through the last layer).
        var ready = [Int](repeating: 0, count: ranges.count)
        for c in ranges.indices {
            ready[c] = c
            for k in chunkEdges[c] { ready[c] = max(ready[c], targets[k] / size) }
        }
        let x = try rows(nodes, 0 ..< n)
        var layered = 0, headed = 0
        var pending: [[PredictedBlock]] = []
        var emitError: Error? = nil
        while headed < ranges.count || !pending.isEmpty {
            let layerChunks = Array(layered ..< min(ranges.count, layered + workerCount))
            var headChunks: [Int] = []
            while headed + headChunks.count < ranges.count, headChunks.count < workerCount,
                  ready[headed + headChunks.count] < layered { headChunks.append(headed + headChunks.count) }
            let tasks = layerChunks.count + headChunks.count
            let results = UnsafeMutableBufferPointer<Result<[PredictedBlock], Error>?>.allocate(capacity: max(1, tasks))
            results.initialize(repeating: nil)
            defer { results.deinitialize(); results.deallocate() }
            let previous = pending
            ConcurrentLoop.perform(iterations: tasks + 1) { w in
                if w == 0 {
                    do { for blocks in previous { try emit(blocks) } } catch { emitError = error }
                } else if w <= layerChunks.count {
                    inner.run { results[w - 1] = Result { try layerPass(last, layerChunks[w - 1], x); return [] } }
                } else {
                    inner.run { results[w - 1] = Result { try blocks(of: headChunks[w - 1 - layerChunks.count]) } }
                }
            }
            if let emitError { throw emitError }
            for t in 0 ..< layerChunks.count { _ = try results[t]!.get() }
            pending = try (0 ..< headChunks.count).map { try results[layerChunks.count + $0]!.get() }
            layered += layerChunks.count
            headed += headChunks.count
            done += layerChunks.count + previous.count
            if !previous.isEmpty || !layerChunks.isEmpty { progress?(done, steps) }
            if tasks == 0 && previous.isEmpty { break }   // unreachable: every chunk's ready ≤ its last chunk
        }
    }
}
