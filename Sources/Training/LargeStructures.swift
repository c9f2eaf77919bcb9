// Prediction of large structures (10³–10⁵ atoms) in bounded memory, blocks streamed into the
// output HDF5 (chunked, compressed) as they are made. A stage-1 model is evaluated layer by layer
// over chunks of atoms on the context's threads (Models/LayerwiseInference.swift): every atom once
// per layer, memory = the node and edge features of the structure + one chunk's activations per
// worker. A hybrid is predicted tile by tile: the atoms are cut into spatial tiles of about
// `chunkAtoms`, each tile predicted on the sub-graph of the atoms within `haloHops` graph hops of
// it, and only the tile's own rows are kept. Both equal the whole-structure prediction up to float
// rounding. The blocks are those of S (computed from the basis named in info.json when overlap.h5
// is absent), else of H, else every pair within the model's cutoff.
import Autograd
import Basis
import Foundation
import Formats
import Graphs
import Linalg
import Models
import Structures

public struct LargeStructureOptions: Sendable {
    /// Structures with more atoms than this are predicted by the streaming path.
    public var streamingAtoms: Int = 800
    /// Atoms per chunk: a stage-1 model is evaluated layer by layer over chunks of this many
    /// atoms (default 128: memory per worker ≈ 0.1 GiB), a hybrid on tiles of this many atoms plus
    /// their halo (default 800). nil: the model kind's default.
    public var chunkAtoms: Int?
    /// Compute S from the basis when the input has no overlap.h5 and info.json names a basis.
    public var computeOverlap: Bool = true
    public var basisSearchPaths: [String] = []
    public init(chunkAtoms: Int? = nil, streamingAtoms: Int = 800, computeOverlap: Bool = true, basisSearchPaths: [String] = []) {
        self.chunkAtoms = chunkAtoms
        self.streamingAtoms = streamingAtoms
        self.computeOverlap = computeOverlap
        self.basisSearchPaths = basisSearchPaths
    }
}

extension Predictor {
    /// Graph hops a tile's halo needs for its blocks to equal the whole-structure prediction.
    /// Message passing is local: after k layers a node's features depend on the atoms within k
    /// hops; block (i, j) reads the last edge features of (i, j) — built from the nodes of i and j
    /// one layer earlier, so within L hops of i — and the on-site block reads node i after L
    /// layers. In the sub-graph induced on the halo, a node h hops from the tile has exact features
    /// after k layers when h + k ≤ depth, so depth = L₁ (+ L₂ for the stage-2 layers on top) is
    /// enough (checked by LargeStructureTests against the whole-structure prediction).
    public var haloHops: Int { model.config.layers + (hybrid?.stage2.config.layers ?? 0) }

    /// Atoms per chunk (stage 1, layer by layer) or per tile (hybrid) when the options give none.
    public var defaultChunkAtoms: Int { hybrid == nil ? 128 : 800 }

    /// Predicts H of one (large) structure and streams it to `writer`: a stage-1 model layer by
    /// layer over chunks of `chunkAtoms` atoms on the context's threads (`predictLayerwise`), a
    /// hybrid tile by tile. Returns the number of blocks written.
    @discardableResult
    public func predictStreaming(_ record: DFTRecord, keys: [BlockKey], to writer: StreamingOperatorWriter,
                                 chunkAtoms: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        let chunkAtoms = chunkAtoms ?? defaultChunkAtoms
        if hybrid == nil {
            // Stage 1 alone: layer by layer over chunks of atoms, each atom evaluated once per layer.
            let graph = try StructureGraph(name: record.name, structure: record.structure, keys: keys, config: model.config)
            var written = 0
            try model.predictLayerwise(graph, chunkAtoms: chunkAtoms, workers: ExecutionContext.current.threads,
                                       progress: { progress?(record.structure.atomCount * $0 / $1, record.structure.atomCount) }) { blocks in
                for b in blocks { try writer.append(b.key, rows: b.rows, cols: b.cols, values: b.values) }
                written += blocks.count
            }
            return written
        }
        let structure = record.structure
        let n = structure.atomCount
        // Undirected adjacency of the block graph.
        var neighbours = [[Int32]](repeating: [], count: n)
        var edgesOf = [[BlockKey]](repeating: [], count: n)
        for k in keys where !(k.i == k.j && k.shift == .zero) {
            neighbours[k.i].append(Int32(k.j))
            edgesOf[k.i].append(k)
        }
        for i in 0 ..< n { neighbours[i] = Array(Set(neighbours[i])) }
        let tiles = Self.spatialTiles(structure, atomsPerTile: max(1, chunkAtoms))
        // Tiles run on the workers (one thread each, a wave of one tile per worker; memory grows
        // with the workers); their blocks are written in tile order.
        let context = ExecutionContext.current
        let workers = max(1, min(context.threads, tiles.count))
        let inner = context.with(threads: max(1, context.threads / workers))
        func predictTile(_ core: [Int]) throws -> [PredictedBlock] {
            var inHalo = [Int32](repeating: -1, count: n)    // local index in the halo, or −1
            // Halo: breadth-first to `haloHops`.
            var halo = core
            var frontier = core
            var seen = Set(core)
            for _ in 0 ..< haloHops {
                var next: [Int] = []
                for a in frontier { for b in neighbours[a] where seen.insert(Int(b)).inserted { next.append(Int(b)) } }
                halo += next
                frontier = next
                if next.isEmpty { break }
            }
            halo.sort()
            for (local, a) in halo.enumerated() { inHalo[a] = Int32(local) }
            var subKeys: [BlockKey] = []
            for a in halo {
                for k in edgesOf[a] where inHalo[k.j] >= 0 {
                    subKeys.append(BlockKey(shift: k.shift, i: Int(inHalo[a]), j: Int(inHalo[k.j])))
                }
            }
            let sub = Structure(lattice: structure.lattice, atomicNumbers: halo.map { structure.atomicNumbers[$0] },
                                positions: halo.map { structure.positions[$0] }, basis: structure.basis)
            let graph = try StructureGraph(name: record.name, structure: sub, keys: subKeys, config: model.config)
            let batch = try GraphBatch<Float>([graph], config: model.config)
            let h = try hybrid.map { try $0.predictOperators(batch)[0] } ?? model.predictOperators(batch)[0]
            let coreSet = Set(core.map { Int(inHalo[$0]) })
            var out: [PredictedBlock] = []
            for b in 0 ..< h.blockCount {
                let key = h.keys[b]
                guard coreSet.contains(key.i) else { continue }
                let shape = h.shape(at: b)
                out.append(PredictedBlock(key: BlockKey(shift: key.shift, i: halo[key.i], j: halo[key.j]), rows: shape.x, cols: shape.y,
                                          values: Array(h.values(at: b))))
            }
            return out
        }
        var done = 0, written = 0
        for wave in stride(from: 0, to: tiles.count, by: workers) {
            let count = min(workers, tiles.count - wave)
            var results = [Result<[PredictedBlock], Error>?](repeating: nil, count: count)
            let lock = NSLock()
            ConcurrentLoop.perform(iterations: count) { w in
                // Runs in the caller's execution context (no gradients while predicting), its thread budget shared out.
                let r = inner.run { Result { try predictTile(tiles[wave + w]) } }
                lock.lock(); results[w] = r; lock.unlock()
            }
            for (w, r) in results.enumerated() {
                for b in try r!.get() { try writer.append(b.key, rows: b.rows, cols: b.cols, values: b.values) }
                written += try r!.get().count
                done += tiles[wave + w].count
                progress?(done, n)
            }
        }
        return written
    }

    /// Atoms grouped into compact tiles of about `atomsPerTile`, by their fractional coordinates
    /// along the two longest lattice directions (every atom in exactly one tile, tiles in order).
    static func spatialTiles(_ s: Structure, atomsPerTile: Int) -> [[Int]] {
        let n = s.atomCount
        let count = max(1, (n + atomsPerTile - 1) / atomsPerTile)
        if count == 1 { return [Array(0 ..< n)] }
        let lengths = s.lattice.vectors.map(norm)
        let axes = [0, 1, 2].sorted { lengths[$0] > lengths[$1] }
        let (a, b) = (axes[0], axes[1])
        let ratio = lengths[a] / max(lengths[b], 1e-9)
        let na = max(1, min(count, Int((Double(count) * ratio).squareRoot().rounded())))
        let nb = max(1, (count + na - 1) / na)
        var tiles = [[Int]](repeating: [], count: na * nb)
        for i in 0 ..< n {
            let f = s.lattice.fractional(s.positions[i])
            let fa = f[a] - f[a].rounded(.down), fb = f[b] - f[b].rounded(.down)
            let ta = min(na - 1, Int(fa * Double(na))), tb = min(nb - 1, Int(fb * Double(nb)))
            tiles[ta * nb + tb].append(i)
        }
        return tiles.filter { !$0.isEmpty }
    }

    /// Predicts one structure folder (POSCAR + info.json [+ overlap.h5]) into `destination`
    /// (POSCAR, info.json, overlap.h5, hamiltonian_pred.h5), streaming S (when computed from the
    /// basis) and H; staged and renamed whole.
    @discardableResult
    public func predictLarge(folder: URL, destination: URL, options: LargeStructureOptions,
                             log: (String) -> Void = { _ in }, progress: ((Int, Int) -> Void)? = nil) throws -> (blocks: Int, seconds: Double) {
        let start = Date()
        var record = try FormatReader.readRecord(at: folder)
        let parent = destination.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let stagingName = ".\(destination.lastPathComponent).predict-\(ProcessInfo.processInfo.processIdentifier)"
        let staging = parent.appendingPathComponent(stagingName)
        try? FileManager.default.removeItem(at: staging)
        do {
            let keys: [BlockKey]
            if record.overlap == nil, options.computeOverlap, record.extraInfoValue("basis") != nil {
                // S from the basis, streamed into the staging folder (with POSCAR and info.json).
                let job = OverlapJob(resolver: BasisResolver(searchPaths: options.basisSearchPaths))
                var prepared = try job.prepare(name: stagingName, folder: folder)
                prepared.record.name = record.name
                let s = try job.write(prepared, under: parent)
                keys = s.keys
                log(String(format: "%@: overlap from basis %@: %d blocks in %.2f s", record.name, prepared.calculator.basis.name, s.blocks, s.seconds))
            } else {
                if let s = record.overlap { keys = s.keys }
                else if let h = record.hamiltonian { keys = h.keys }
                else { keys = try NeighborGraphBuilder.withinCutoff(record.structure, cutoff: model.config.cutoff, includeSelf: true).keys }
                let out = DFTRecord(name: record.name, structure: record.structure, hamiltonian: nil, overlap: record.overlap,
                                    fermiEnergy: record.fermiEnergy, spinful: false, orthogonalBasis: record.orthogonalBasis,
                                    extraInfo: record.extraInfo.filter { Predictor.carriedInfoKeys.contains($0.key) })
                try FormatWriter.write(out, to: staging, format: .deephDock)
            }
            record.overlap = nil   // S is on disk; the prediction needs only its keys
            record.hamiltonian = nil
            let writer = try StreamingOperatorWriter(url: staging.appendingPathComponent(Predictor.predictedFileName(.deephDock)))
            let blocks = try predictStreaming(record, keys: keys, to: writer, chunkAtoms: options.chunkAtoms, progress: progress)
            try writer.finish()
            if FileManager.default.fileExists(atPath: destination.path) { try FileManager.default.removeItem(at: destination) }
            try FileManager.default.moveItem(at: staging, to: destination)
            return (blocks, Date().timeIntervalSince(start))
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
    }
}
