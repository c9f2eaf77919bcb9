// Prediction: a checkpoint and structures in, DeepH files out. Needs only the structure and its
// orbital basis: the blocks predicted are those of the overlap file when there is one (DeepH's
// convention: H has the sparsity of S), else of the Hamiltonian file, else every pair within the
// model's cutoff. Each structure's output folder is the input's layout with the predicted H as
// hamiltonian_pred.h5 (DeepH-dock) or hamiltonians_pred.h5 (DeepH legacy), written under a
// temporary name and renamed into place. Structures larger than one tile, or without overlap.h5
// but with a basis named in info.json (S is then computed from the basis), go through the
// tiled, streaming path of LargeStructures.swift.
import Autograd
import Formats
import Foundation
import HDF5Kit
import Models
import Structures

public struct PredictionResult: Sendable {
    public let name: String
    public let folder: URL
    public let blocks: Int
    public let seconds: Double
}

public final class Predictor {
    /// Stage 1 (alone, or the frozen base of a hybrid).
    public let model: HamiltonianModel<Float>
    /// Stage 1 + stage 2 when the checkpoint is a hybrid (written by `refine`).
    public let hybrid: HybridHamiltonianModel<Float>?
    public let checkpoint: URL
    public var kind: ModelKind { hybrid == nil ? .stage1 : .hybrid }

    /// File names of the predicted Hamiltonian in each layout.
    /// For abacus-csr the whole folder is the prediction, in the names ABACUS tools read.
    public static func predictedFileName(_ format: DFTFormat) -> String {
        switch format {
        case .deephDock: return "hamiltonian_pred.h5"
        case .deephLegacy: return "hamiltonians_pred.h5"
        case .abacus, .cp2k: return "OUT.ABACUS/data-HR-sparse_SPIN0.csr"
        }
    }

    /// The layout predictions are written in: `requested`, else the input's own (DeepH-dock for
    /// CP2K input, which HarmoSE reads but does not write).
    public static func outputFormat(input: DFTFormat, requested: DFTFormat?) -> DFTFormat {
        requested ?? (input == .cp2k ? .deephDock : input)
    }

    /// Loads a checkpoint file, or best.h5 (else last.h5) of a train or refine output folder;
    /// a hybrid checkpoint (its `kind` marker) predicts H₁ + ΔH, a stage-1 one H₁.
    public init(checkpoint: URL) throws {
        let path = try HybridCheckpoint.resolve(checkpoint)
        // Read once: kind, configuration and weights from the same snapshot of the file.
        let file = try HybridCheckpoint.open(path.path)
        if try HybridCheckpoint.kind(file) == .hybrid {
            let loaded = try HybridCheckpoint.loadHybrid(file)
            hybrid = loaded
            model = loaded.stage1
        } else {
            model = try HybridCheckpoint.loadStage1(file)
            hybrid = nil
        }
        self.checkpoint = path
    }

    /// Predicted H (internal order, eV) for one structure.
    public func predict(_ record: DFTRecord) throws -> BlockOperator {
        try predictExclusive(record)
    }

    func predictExclusive(_ record: DFTRecord) throws -> BlockOperator {
        let config = model.config
        let graph: StructureGraph
        if let keys = record.overlap?.keys ?? record.hamiltonian?.keys {
            graph = try StructureGraph(name: record.name, structure: record.structure, keys: keys, config: config)
        } else {
            graph = try StructureGraph(name: record.name, structure: record.structure, cutoff: config.cutoff, config: config)
        }
        let batch = try GraphBatch<Float>([graph], config: config)
        if let hybrid { return try hybrid.predictOperators(batch)[0] }
        return try model.predictOperators(batch)[0]
    }

    /// Predicts every structure under the inputs and writes one folder per structure under
    /// `outputDirectory` (named like the record). Returns what was written.
    @discardableResult
    public func predict(inputs: [URL], outputDirectory: URL, format requested: DFTFormat? = nil, only names: Set<String>? = nil, owns: (Int) -> Bool = { _ in true },
                        options: LargeStructureOptions = LargeStructureOptions(),
                        log: (String) -> Void = { _ in }, progress: ((Int, Int) -> Void)? = nil,
                        atomProgress: ((Int, Int) -> Void)? = nil) throws -> [PredictionResult] {
        try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        var results: [PredictionResult] = []
        var total = 0, index = 0
        for input in inputs { total += try DatasetSource(url: input).structureNames().filter { names?.contains($0) ?? true }.count }
        for input in inputs {
            let source = try DatasetSource(url: input)
            let inputFormat = try FormatReader.detect(at: input)
            let format = Predictor.outputFormat(input: inputFormat, requested: requested)
            let isFolder = (try? FileManager.default.attributesOfItem(atPath: input.path)[.type] as? FileAttributeType) == .typeDirectory
            let single = isFolder && FileManager.default.fileExists(atPath: input.appendingPathComponent(DeepHDock.infoFile).path)
            try source.forEachRecord { record in
                guard names?.contains(record.name) ?? true else { return }
                defer { index += 1 }
                guard owns(index) else { return }
                let start = Date()
                let folder = single ? input : input.appendingPathComponent(record.name)
                let large = record.structure.atomCount > options.streamingAtoms
                    || (record.overlap == nil && options.computeOverlap && record.extraInfoValue("basis") != nil)
                if inputFormat == .deephDock && format == .deephDock && isFolder && large && FileManager.default.fileExists(atPath: folder.appendingPathComponent(DeepHDock.infoFile).path) {
                    let destination = outputDirectory.appendingPathComponent(record.name)
                    let r = try predictLarge(folder: folder, destination: destination, options: options, log: log, progress: atomProgress)
                    results.append(PredictionResult(name: record.name, folder: destination, blocks: r.blocks, seconds: r.seconds))
                    log(String(format: "%@: %d atoms, %d blocks predicted in %.3f s (layer by layer in chunks of %d atoms, streamed) → %@", record.name,
                               record.structure.atomCount, r.blocks, r.seconds, options.chunkAtoms ?? defaultChunkAtoms, destination.path))
                    progress?(results.count, total)
                    return
                }
                let h = try predict(record)
                let seconds = Date().timeIntervalSince(start)
                let written = try write(record, prediction: h, format: format, under: outputDirectory)
                results.append(PredictionResult(name: record.name, folder: written, blocks: h.blockCount, seconds: seconds))
                log(String(format: "%@: %d blocks predicted in %.3f s → %@", record.name, h.blockCount, seconds, written.path))
                progress?(results.count, total)
            }
        }
        return results
    }

    /// info.json extras copied into prediction folders: properties of the system (the electron
    /// count, which places the Fermi level of predicted bands), not results of the DFT run such as
    /// `homo_eV`, which would sit next to a Hamiltonian they do not describe.
    static let carriedInfoKeys: Set<String> = ["occupation"]

    func write(_ record: DFTRecord, prediction: BlockOperator, format: DFTFormat, under root: URL) throws -> URL {
        // Names come from outside (archive members): confined to the output folder; two inputs
        // with the same structure name are refused rather than one overwriting the other.
        let destination = try MemberPath.confined(record.name, in: root, source: record.name)
        if FileManager.default.fileExists(atPath: destination.path) {
            throw FormatError(file: destination.path, field: "name", message: "two input structures are named \(MemberPath.quoted(record.name)): refusing to overwrite the first prediction")
        }
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        let staging = destination.deletingLastPathComponent()
            .appendingPathComponent(".\(destination.lastPathComponent).predict-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: staging)
        let out = DFTRecord(name: record.name, structure: record.structure, hamiltonian: prediction, overlap: record.overlap,
                            fermiEnergy: record.fermiEnergy, spinful: false, orthogonalBasis: record.orthogonalBasis,
                            extraInfo: record.extraInfo.filter { Predictor.carriedInfoKeys.contains($0.key) })
        do {
            try FormatWriter.write(out, to: staging, format: format)
            if format == .deephDock || format == .deephLegacy {
                let plain = staging.appendingPathComponent(format == .deephDock ? DeepHDock.hamiltonianFile : DeepHLegacy.hamiltonianFile)
                try FileManager.default.moveItem(at: plain, to: staging.appendingPathComponent(Predictor.predictedFileName(format)))
            }
            try FileManager.default.moveItem(at: staging, to: destination)
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw error
        }
        return destination
    }
}
