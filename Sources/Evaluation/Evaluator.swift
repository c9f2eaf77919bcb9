// Running an evaluation: per structure, H errors and band errors; over the set, merged errors and
// a parity sample.
import Bands
import Foundation
import HDF5Kit
import Structures

/// Everything measured on one structure.
public struct StructureEvaluation: Sendable {
    public var name: String
    public var referencePath: String
    public var predictionPath: String
    public var atomCount: Int
    public var orbitalCount: Int
    public var blockCount: Int
    public var errors: HamiltonianErrors
    public var bands: BandComparison?
    /// Largest |H_pred(R,i,j) − H_pred(−R,j,i)ᵀ| (eV) over block pairs present in the prediction.
    public var predictionHermiticity: Double
}

/// A fixed-size uniform sample of a stream (Algorithm R) with a seeded generator, so the parity
/// plot of a rerun is the same picture.
public struct ReservoirSample: Sendable {
    public let capacity: Int
    public private(set) var reference: [Double] = []
    public private(set) var predicted: [Double] = []
    public private(set) var seen = 0
    private var state: UInt64

    public init(capacity: Int, seed: UInt64 = 0x5EED_2024) {
        self.capacity = max(0, capacity)
        state = seed
    }

    private mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func add(_ r: Double, _ p: Double) {
        seen += 1
        if reference.count < capacity {
            reference.append(r); predicted.append(p)
        } else if capacity > 0 {
            let j = Int(next() % UInt64(seen))
            if j < capacity { reference[j] = r; predicted[j] = p }
        }
    }
}

public enum Evaluator {
    /// (H + H†)/2 in real space: each block and its partner replaced by their mean. Models
    /// predict (R,i,j) and (−R,j,i) separately, so a prediction is slightly non-Hermitian and a
    /// Hermitian eigensolver would read only one triangle of H(k) — which one is the solver's
    /// business. The mean makes bands independent of that choice; DFT data get the same
    /// treatment (they are Hermitian to round-off, ~1e-8 eV).
    public static func hermitianPart(_ op: BlockOperator) -> BlockOperator {
        var out = op
        for (b, key) in op.keys.enumerated() {
            guard let p = op.position(of: key.transposed), p != b || key.i == key.j else { continue }
            let s = op.shape(at: b)
            let mine = op.offsets[b], theirs = op.offsets[p]
            for r in 0 ..< s.x {
                for c in 0 ..< s.y {
                    out.entries[mine + r * s.y + c] = 0.5 * (op.entries[mine + r * s.y + c] + op.entries[theirs + c * s.x + r])
                }
            }
        }
        return out
    }

    /// Evaluates one structure given in memory: `prediction` on `reference`'s structure (shapes
    /// must fit, which the readers guarantee for files). `kpath` nil: the automatic path.
    public static func evaluate(reference: DFTRecord, prediction: BlockOperator, kpath: KPath? = nil,
                                electronCount: Double? = nil, options: EvaluationOptions = EvaluationOptions(),
                                referencePath: String? = nil, predictionPath: String? = nil, storedBands: StoredBands? = nil,
                                sample: inout ReservoirSample) throws -> StructureEvaluation {
        guard let h = reference.hamiltonian else {
            throw EvaluationError.noReferenceHamiltonian(file: referencePath ?? reference.name)
        }
        let errors = HamiltonianErrors.compare(reference: h, prediction: prediction, structure: reference.structure,
                                               name: reference.name, sample: &sample)
        var bands: BandComparison?
        if options.computeBands {
            // Both sides symmetrized the same way, so identical inputs give identical bands.
            let refSystem = try BlochSystem(record: reference, hamiltonian: hermitianPart(h),
                                            hamiltonianSource: referencePath.map { "\($0)/hamiltonian" })
            let predSystem = try BlochSystem(record: reference, hamiltonian: hermitianPart(prediction),
                                             hamiltonianSource: predictionPath ?? "prediction")
            bands = try BandComparison.compute(reference: refSystem, predicted: predSystem, path: kpath,
                                               fermiEnergy: reference.fermiEnergy, electronCount: electronCount,
                                               bandsAbove: options.bandsAbove, density: options.kpointDensity,
                                               overlapThreshold: options.overlapThreshold, minimumKPoints: options.minimumKPoints,
                                               stored: storedBands, workers: options.workers)
            if let alt = options.alternativeOverlapThreshold, alt != options.overlapThreshold {
                // Both sides solved at the second threshold, on the primary comparison's k-points.
                let b = try BandComparison.compute(reference: refSystem, predicted: predSystem, path: storedBands?.path ?? kpath,
                                                   fermiEnergy: reference.fermiEnergy, electronCount: electronCount,
                                                   bandsAbove: options.bandsAbove, density: options.kpointDensity,
                                                   overlapThreshold: alt, minimumKPoints: options.minimumKPoints,
                                                   workers: options.workers)
                bands?.alternative = (alt, b.window, b.ghostBands, b.droppedOverlapDirections)
            }
        }
        let deviation = prediction.hermiticityDeviation().maxDeviation
        return StructureEvaluation(name: reference.name, referencePath: referencePath ?? reference.name,
                                   predictionPath: predictionPath ?? "", atomCount: reference.structure.atomCount,
                                   orbitalCount: reference.structure.totalOrbitals, blockCount: h.blockCount,
                                   errors: errors, bands: bands, predictionHermiticity: deviation)
    }

    /// Evaluates every reference structure under `reference` against its prediction under
    /// `predictions` (see `Matching.pair`). `progress(done, total)` after each structure.
    public static func evaluate(predictions: URL, reference: URL, options: EvaluationOptions = EvaluationOptions(),
                                progress: ((Int, Int) -> Void)? = nil) throws -> EvaluationReport {
        let (pairs, unmatched, skipped) = try Matching.pair(predictions: predictions, reference: reference,
                                                            skipMissing: options.skipMissingPredictions)
        var sample = ReservoirSample(capacity: options.paritySample)
        var structures: [StructureEvaluation] = []
        for (n, pair) in pairs.enumerated() {
            let (ref, pred) = try Matching.load(pair)
            var record = ref.record
            record.name = pair.name
            let kpath = try ref.folderKPath.map { try KPath.read($0) }
            var stored: StoredBands?
            if options.computeBands, let bands = options.referenceBands {
                // A bands stage names structures as its ingest artifact does (relative to structures/).
                let folder = pair.referenceFolder.standardizedFileURL.path
                let ingested = reference.appendingPathComponent("structures").standardizedFileURL.path + "/"
                let name = folder.hasPrefix(ingested) ? String(folder.dropFirst(ingested.count)) : pair.name
                let file = bands.appendingPathComponent("bands/\(name)/band.h5")
                guard FileManager.default.fileExists(atPath: file.path) else {
                    throw HDF5Error(file: file.path, message: "no reference bands for structure '\(name)' in the bands artifact (it must be computed from the same reference dataset)")
                }
                stored = try StoredBands.read(file)
            }
            structures.append(try evaluate(reference: record, prediction: pred, kpath: kpath, electronCount: ref.electronCount,
                                           options: options, referencePath: pair.referenceFolder.path,
                                           predictionPath: pair.predictionFile.path, storedBands: stored, sample: &sample))
            progress?(n + 1, pairs.count)
        }
        return EvaluationReport(prediction: predictions.path, reference: reference.path, options: options,
                                structures: structures, unmatchedPredictions: unmatched, skippedReferences: skipped, sample: sample)
    }
}
