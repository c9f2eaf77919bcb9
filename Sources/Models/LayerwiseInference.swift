// Inference on structures too large for one forward pass (10³–10⁵ atoms), layer by layer over
// chunks of atoms: owns the chunking (`AtomChunks`), the whole-structure feature rows kept between
// layers (`FeatureRows`), the workers and the pipeline that overlaps the last pass, the heads and
// the writing of blocks (`ChunkRunner`), and stage 1's layer-by-layer pass and prediction. Stage 2
// of a hybrid runs on the same machinery (Stage2Layerwise.swift).
//
// Between layers only the node and edge features of the whole structure are kept — never the
// products, radial weights or other activations of more than one chunk per worker — and every atom
// and edge is evaluated once per layer (a tiled evaluation with halos of the receptive field
// — this code's predecessor for hybrids — evaluated each atom several times). The chunks of one pass are independent: each reads the
// previous layer's features and writes only its own atoms' and edges' rows, so they run on the
// workers, one thread each. The heads then turn the final features into blocks, each block pair
// (i, j, R) / (j, i, −R) made once, by the chunk of the first edge's source, and averaged with
// its transpose as `GraphBatch.assembleOperators` does; they are handed over chunk by chunk, in
// chunk order.
//
// Every row goes through the operations of the whole-structure forward pass in the same order,
// and a node's messages are reduced over its edges in the batch's edge order, so the blocks equal
// the whole-structure prediction up to how the matrix products round for a different number of
// rows (LayerwiseInferenceTests bounds the difference), and bit for bit for any worker count.
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

/// A structure's atoms cut into ranges of `size`, and how its edges and blocks fall into them.
struct AtomChunks {
    let size: Int
    let ranges: [Range<Int>]
    /// Source (i) and target (j) atom of each edge, in the graph's edge order.
    let sources: [Int], targets: [Int]
    /// Edges leaving (source in) and entering (target in) each chunk, in edge order.
    let leaving: [[Int]], entering: [[Int]]
    /// Each edge's transposed partner (j → i, −R), or −1.
    let partner: [Int]
    /// The edges whose block pairs chunk c makes: those leaving it that come before their partner
    /// (or have none). Every block is made once.
    let owned: [[Int]]
    /// The last chunk of the final pass that chunk c's blocks read: c, and the chunks of both
    /// ends of its owned edges (an edge's features are final in its source's or target's chunk,
    /// its partner's in the other one).
    let ready: [Int]

    init(_ graph: StructureGraph, chunkAtoms: Int) {
        let n = graph.structure.atomCount, size = max(1, chunkAtoms)
        let ranges = stride(from: 0, to: n, by: size).map { $0 ..< min(n, $0 + size) }
        let sources = graph.edges.map(\.i), targets = graph.edges.map(\.j)
        var leaving = [[Int]](repeating: [], count: ranges.count), entering = leaving
        for k in sources.indices {
            leaving[sources[k] / size].append(k)
            entering[targets[k] / size].append(k)
        }
        var edgeOfKey: [BlockKey: Int] = [:]
        edgeOfKey.reserveCapacity(graph.edges.count)
        for (k, e) in graph.edges.enumerated() { edgeOfKey[e.key] = k }
        let partner = graph.edges.map { edgeOfKey[$0.key.transposed] ?? -1 }
        let owned = leaving.map { $0.filter { partner[$0] < 0 || $0 < partner[$0] } }
        self.size = size; self.ranges = ranges; self.sources = sources; self.targets = targets
        self.leaving = leaving; self.entering = entering; self.partner = partner; self.owned = owned
        ready = ranges.indices.map { c in owned[c].reduce(c) { max($0, targets[$1] / size) } }
    }

    /// Chunk c's blocks: its atoms' on-site blocks, then those of each owned edge and its partner,
    /// each averaged with its transposed partner as `GraphBatch.assembleOperators` does.
    /// `raw(group, rows)` gives the unsymmetrised blocks, row after row, of rows of one group
    /// (atoms for an on-site group, edges for an off-site one).
    func blocks<T: Scalar>(of c: Int, graph: StructureGraph, raw: (BlockGroup, [Int]) throws -> [T]) throws -> [PredictedBlock] {
        let structure = graph.structure, z = structure.atomicNumbers
        let range = ranges[c]
        var out: [PredictedBlock] = []
        out.reserveCapacity(range.count + 2 * owned[c].count)
        func orbitals(_ a: Int) -> Int { structure.shells(ofAtom: a).orbitalCount }
        // Raw blocks by group, then where each row's block starts.
        func rawByGroup(_ rows: [Int], group: (Int) -> BlockGroup) throws -> [Int: (values: [T], start: Int)] {
            var byGroup: [BlockGroup: [Int]] = [:]
            for r in rows { byGroup[group(r), default: []].append(r) }
            var located: [Int: (values: [T], start: Int)] = [:]
            for g in byGroup.keys.sorted() {
                let list = byGroup[g]!
                let values = try raw(g, list)
                let width = values.count / list.count
                for (k, r) in list.enumerated() { located[r] = (values, k * width) }
            }
            return located
        }
        // On-site blocks (their own transpose is their Hermitian partner).
        let onsite = try rawByGroup(Array(range)) { BlockGroup(onsite: true, zi: z[$0], zj: z[$0]) }
        for a in range {
            let (values, start) = onsite[a]!, m = orbitals(a)
            var block = [Double](repeating: 0, count: m * m)
            for r in 0 ..< m { for q in 0 ..< m {
                block[r * m + q] = 0.5 * (Double(values[start + r * m + q]) + Double(values[start + q * m + r]))
            } }
            out.append(PredictedBlock(key: BlockKey(shift: .zero, i: a, j: a), rows: m, cols: m, values: block))
        }
        // Off-site: each owned edge and its partner.
        let edges = owned[c] + owned[c].map { partner[$0] }.filter { $0 >= 0 }
        let offsite = try rawByGroup(edges) { BlockGroup(onsite: false, zi: z[sources[$0]], zj: z[targets[$0]]) }
        func block(_ k: Int, partner p: Int) -> PredictedBlock {
            let e = graph.edges[k]
            let ni = orbitals(e.i), nj = orbitals(e.j)
            let (values, start) = offsite[k]!
            var block = (0 ..< ni * nj).map { Double(values[start + $0]) }
            if p >= 0 {
                let (pv, ps) = offsite[p]!
                for i in 0 ..< ni { for j in 0 ..< nj { block[i * nj + j] = 0.5 * (block[i * nj + j] + Double(pv[ps + j * ni + i])) } }
            }
            return PredictedBlock(key: e.key, rows: ni, cols: nj, values: block)
        }
        for k in owned[c] {
            let p = partner[k]
            out.append(block(k, partner: p))
            if p >= 0 { out.append(block(p, partner: k)) }
        }
        return out
    }
}

/// A [rows, width] matrix of the whole structure kept between layers (node or edge features).
/// The chunks of a pass read any rows and each writes only its own.
final class FeatureRows<T: Scalar> {
    let width: Int
    private let storage: UnsafeMutableBufferPointer<T>

    init(rows: Int, width: Int) {
        self.width = width
        storage = .allocate(capacity: max(1, rows * width))
    }
    deinit { storage.deallocate() }

    /// The given rows, in that order, as a [indices.count, width] tensor.
    func gather(_ indices: some Collection<Int>) throws -> Tensor<T> {
        var out: [T] = uninitializedArray(count: indices.count * width)
        out.withUnsafeMutableBufferPointer { o in
            for (r, k) in indices.enumerated() { (o.baseAddress! + r * width).update(from: storage.baseAddress! + k * width, count: width) }
        }
        return try Tensor(out, shape: [indices.count, width])
    }

    /// Writes row r of `t` into row indices[r].
    func store(_ t: Tensor<T>, at indices: some Collection<Int>) {
        t.data.withUnsafeBufferPointer { v in
            for (r, k) in indices.enumerated() { (storage.baseAddress! + k * width).update(from: v.baseAddress! + r * width, count: width) }
        }
    }
}

/// Runs the passes of a layer-by-layer evaluation over the chunks on the workers, one thread
/// each (the context's thread budget shared out), and counts them for the progress report.
final class ChunkRunner {
    let chunks: AtomChunks
    let workerCount: Int
    let inner: ExecutionContext
    let totalPasses: Int
    let progress: ((Int, Int) -> Void)?
    private var done = 0

    /// `passes`: how many times each chunk is visited (layers, final pass and heads).
    init(_ chunks: AtomChunks, workers: Int, context: ExecutionContext, passes: Int, progress: ((Int, Int) -> Void)?) {
        self.chunks = chunks
        workerCount = max(1, min(workers, chunks.ranges.count))
        inner = context.with(threads: max(1, context.threads / workerCount))
        totalPasses = passes * chunks.ranges.count
        self.progress = progress
    }

    /// One full pass: `body(c)` for every chunk; rethrows the first failing chunk's error.
    func forEachChunk(_ body: (Int) throws -> Void) throws {
        let count = chunks.ranges.count
        let results = UnsafeMutableBufferPointer<Result<Void, Error>?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        ConcurrentLoop.perform(iterations: workerCount) { w in
            inner.run {
                for c in stride(from: w, to: count, by: workerCount) { results[c] = Result { try body(c) } }
            }
        }
        for r in results { try r!.get() }
        advance(count)
    }

    private func advance(_ steps: Int) {
        done += steps
        if steps > 0 { progress?(done, totalPasses) }
    }

    /// The final pass and the heads as one pipeline, so that writing the blocks (one thread:
    /// HDF5) overlaps the network instead of following it. Each wave runs, at once: `emit` of the
    /// blocks made in the previous wave, `finalPass` for the next chunks, and `blocks` of the
    /// chunks whose reads are final (chunk c needs every chunk up to `ready[c]` through the final
    /// pass). Blocks are emitted in chunk order, one call at a time.
    func pipeline(finalPass: (Int) throws -> Void, blocks: (Int) throws -> [PredictedBlock],
                  emit: ([PredictedBlock]) throws -> Void) throws {
        let count = chunks.ranges.count, ready = chunks.ready
        var passed = 0, headed = 0
        var pending: [[PredictedBlock]] = []
        var emitError: Error? = nil
        while headed < count || !pending.isEmpty {
            let passChunks = Array(passed ..< min(count, passed + workerCount))
            var headChunks: [Int] = []
            while headed + headChunks.count < count, headChunks.count < workerCount,
                  ready[headed + headChunks.count] < passed { headChunks.append(headed + headChunks.count) }
            let tasks = passChunks.count + headChunks.count
            let results = UnsafeMutableBufferPointer<Result<[PredictedBlock], Error>?>.allocate(capacity: max(1, tasks))
            results.initialize(repeating: nil)
            defer { results.deinitialize(); results.deallocate() }
            let previous = pending
            ConcurrentLoop.perform(iterations: tasks + 1) { w in
                if w == 0 {
                    do { for blocks in previous { try emit(blocks) } } catch { emitError = error }
                } else if w <= passChunks.count {
                    inner.run { results[w - 1] = Result { try finalPass(passChunks[w - 1]); return [] } }
                } else {
                    inner.run { results[w - 1] = Result { try blocks(headChunks[w - 1 - passChunks.count]) } }
                }
            }
            if let emitError { throw emitError }
            for t in 0 ..< passChunks.count { _ = try results[t]!.get() }
            pending = try (0 ..< headChunks.count).map { try results[passChunks.count + $0]!.get() }
            passed += passChunks.count
            headed += headChunks.count
            advance(passChunks.count + previous.count)
            if tasks == 0 && previous.isEmpty { break }   // unreachable: every chunk's ready ≤ its last chunk
        }
    }
}

/// Stage 1 evaluated layer by layer over the chunks of one structure: the batch of the whole
/// structure (its edge geometry), the node features of the last completed layer and the edge
/// features, updated in place.
final class Stage1Layerwise<T: Scalar> {
    let model: HamiltonianModel<T>
    let batch: GraphBatch<T>
    let chunks: AtomChunks
    /// Node features of the last completed layer, and those the running layer writes.
    private(set) var nodes: FeatureRows<T>, next: FeatureRows<T>
    let edges: FeatureRows<T>
    let normalizer: T

    init(_ model: HamiltonianModel<T>, graph: StructureGraph, chunks: AtomChunks) throws {
        self.model = model
        self.chunks = chunks
        batch = try GraphBatch<T>([graph], config: model.config)
        let n = batch.nodeCount, hdim = model.hiddenIrreps.dim
        nodes = FeatureRows(rows: n, width: hdim)
        next = FeatureRows(rows: n, width: hdim)
        edges = FeatureRows(rows: batch.edgeCount, width: hdim)
        nodes.store(try model.nodeEmbedding(batch.species), at: 0 ..< n)
        normalizer = T(1 / (model.config.avgNeighbors ?? 1).squareRoot())
    }

    var layerCount: Int { model.interactions.count }

    /// Layer `layerIndex` for chunk c: reads `x` (the previous layer's node features, all atoms)
    /// and its leaving edges' previous features, writes those edges' new features in place and its
    /// atoms' new node features into `next`.
    func layer(_ layerIndex: Int, chunk c: Int, x: Tensor<T>) throws {
        let layer = model.interactions[layerIndex]
        let n = batch.nodeCount, edgeCount = batch.edgeCount, hdim = model.hiddenIrreps.dim
        let range = chunks.ranges[c], ce = chunks.leaving[c]
        var aggregated = Tensor<T>(zeros: [range.count, hdim])
        if !ce.isEmpty {
            let edgeRows = try RowIndex(ce, rowCount: edgeCount)
            let src = try RowIndex(ce.map { chunks.sources[$0] }, rowCount: n)
            let dst = try RowIndex(ce.map { chunks.targets[$0] }, rowCount: n)
            let harmonics = try batch.harmonics.gatherRows(edgeRows), radial = try batch.radial.gatherRows(edgeRows)
            var e: Tensor<T>
            if layerIndex == 0 {
                let ends = try Tensor.concat([try batch.species.gatherRows(src), try batch.species.gatherRows(dst)], axis: 1)
                e = try model.edgeEmbedLinear(try model.edgeEmbedProduct(ends, harmonics, weights: try model.edgeEmbedRadial(radial)))
            } else {
                e = try edges.gather(ce)
            }
            let mixed = try layer.edgeMix(try Tensor.concat([try x.gatherRows(src), try x.gatherRows(dst), e], axis: 1))
            // The product laid out for edgeOut (the same values, without slicing it: ~10² MB).
            let product = try layer.edgeProduct.entryMajor(mixed, harmonics, weights: try layer.edgeRadial(radial))
            let update = try layer.edgeGate(try layer.edgeOut(product))
            e = try layer.edgeNorm(try e + update)
            edges.store(e, at: ce)
            let local = try RowIndex(ce.map { chunks.sources[$0] - range.lowerBound }, rowCount: range.count)
            aggregated = try layer.nodeMessage(e).scatterAdd(local) * normalizer
        }
        let xc = try x.gatherRows(try RowIndex(Array(range), rowCount: n))
        let update = try layer.nodeGate(try layer.nodeMix(try Tensor.concat([xc, aggregated], axis: 1)))
        next.store(try layer.nodeNorm(try xc + update), at: range)
    }

    /// Runs layers `layers` as full passes; the last one's node features end in `nodes`.
    func run(layers: Range<Int>, on runner: ChunkRunner) throws {
        for l in layers {
            let x = try nodes.gather(0 ..< batch.nodeCount)
            try runner.forEachChunk { c in try layer(l, chunk: c, x: x) }
            swap(&nodes, &next)
        }
    }
}

extension HamiltonianModel {
    /// Stage 1's blocks [rows, n_i·n_j] (eV, unsymmetrised) of rows of group g from their final
    /// features (node features on-site, edge features off-site).
    func headBlocks(_ g: BlockGroup, _ features: Tensor<T>) throws -> Tensor<T> {
        guard let h = heads[g] else { throw ModelError.badInput("no head for block group \(g)") }
        return try (try (try h.linear(features) * h.scale) + h.shift).matmul(h.compose)
    }

    /// Predicts H of one structure layer by layer over chunks of `chunkAtoms` atoms on up to
    /// `workers` threads (each chunk on one thread). `emit` receives each chunk's blocks — its
    /// atoms' on-site blocks, then each block pair (i, j, R) / (j, i, −R) it owns — in chunk order,
    /// one call at a time (on another thread while the next chunks compute); `progress` (done,
    /// total) counts chunk passes (layers + heads).
    @_specialize(where T == Float)
    public func predictLayerwise(_ graph: StructureGraph, chunkAtoms: Int, workers: Int,
                                 progress: ((Int, Int) -> Void)? = nil,
                                 emit: ([PredictedBlock]) throws -> Void) throws {
        let base = ExecutionContext.current.withoutGradients
        guard graph.structure.atomCount > 0 else { return }
        let chunks = AtomChunks(graph, chunkAtoms: chunkAtoms)
        let stage1 = try base.run { try Stage1Layerwise(self, graph: graph, chunks: chunks) }
        let runner = ChunkRunner(chunks, workers: workers, context: base, passes: interactions.count + 1, progress: progress)
        let last = interactions.count - 1
        try base.run { try stage1.run(layers: 0 ..< last, on: runner) }
        // The last layer pipelined with the heads, which read its output (`next`).
        let x = try stage1.nodes.gather(0 ..< graph.structure.atomCount)
        try runner.pipeline(finalPass: { c in try stage1.layer(last, chunk: c, x: x) }, blocks: { c in
            try chunks.blocks(of: c, graph: graph) { g, rows in
                try headBlocks(g, try (g.onsite ? stage1.next : stage1.edges).gather(rows)).data
            }
        }, emit: emit)
    }
}
