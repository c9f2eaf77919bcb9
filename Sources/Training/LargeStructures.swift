// Prediction of large structures (10³–10⁵ atoms) in bounded memory, blocks streamed into the
// output HDF5 (chunked, compressed) as they are made. The model — stage 1, or a hybrid's stage 1
// then stage 2 — is evaluated layer by layer over chunks of atoms on the context's threads
// (Models/LayerwiseInference.swift, Models/Stage2Layerwise.swift): every atom and edge once per
// layer, memory = the node and edge features of the structure + one chunk's activations per
// worker, blocks equal to the whole-structure prediction up to float rounding. The blocks are
// those of S (computed from the basis named in info.json when overlap.h5 is absent), else of H,
// else every pair within the model's cutoff.
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
    /// Atoms per chunk: the model is evaluated layer by layer over chunks of this many atoms
    /// (memory per worker ≈ 0.1 GiB at 128 atoms). nil: `Predictor.defaultChunkAtoms`.
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
    /// Atoms per chunk when the options give none.
    public var defaultChunkAtoms: Int { 128 }

    /// Predicts H of one (large) structure and streams it to `writer`, layer by layer over chunks
    /// of `chunkAtoms` atoms on the context's threads (`predictLayerwise` of stage 1 or of the
    /// hybrid). `progress` reports (atoms done, atoms) over the chunk passes. Returns the number
    /// of blocks written.
    @discardableResult
    public func predictStreaming(_ record: DFTRecord, keys: [BlockKey], to writer: StreamingOperatorWriter,
                                 chunkAtoms: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        let chunkAtoms = chunkAtoms ?? defaultChunkAtoms
        let graph = try StructureGraph(name: record.name, structure: record.structure, keys: keys, config: model.config)
        let workers = ExecutionContext.current.threads
        let n = record.structure.atomCount
        var written = 0
        func emit(_ blocks: [PredictedBlock]) throws {
            for b in blocks { try writer.append(b.key, rows: b.rows, cols: b.cols, values: b.values) }
            written += blocks.count
        }
        let passes: (Int, Int) -> Void = { progress?(n * $0 / $1, n) }
        if let hybrid {
            try hybrid.predictLayerwise(graph, chunkAtoms: chunkAtoms, workers: workers, progress: passes, emit: emit)
        } else {
            try model.predictLayerwise(graph, chunkAtoms: chunkAtoms, workers: workers, progress: passes, emit: emit)
        }
        return written
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
