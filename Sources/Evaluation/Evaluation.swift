// Evaluation: compares predicted Hamiltonians with DFT references. Owns the error bookkeeping
// (MAE/RMSE/max in meV overall, on-site vs off-site, per element pair, per l pair and per
// orbital-shell pair), band errors (eigenvalues of predicted vs DFT H with the DFT S along the
// structure's k-path; HOMO/LUMO/gap for molecules), matching prediction folders to reference
// structures, metrics.json / table / parity.svg reports, the ablation table that compares model
// variants, and the pipeline stage kind `evaluate`. Definitions are documented in
// docs/evaluation.md; JSON keys are stable (bump `EvaluationReport.formatVersion` on change).
import Foundation
import Bands
import Structures

/// An evaluation input problem, naming the file (and the field) at fault.
public enum EvaluationError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// No prediction folder for a reference structure.
    case missingPrediction(reference: String, predictionRoot: String, expected: String)
    case noReferenceHamiltonian(file: String)
    case noPredictions(root: String)
    /// The prediction cannot be laid onto the reference structure (atoms, basis, layout).
    case incompatible(file: String, field: String, message: String)
    case invalidInput(file: String, message: String)

    public var description: String {
        switch self {
        case let .missingPrediction(reference, root, expected):
            return "\(reference): no prediction for this reference structure in \(root) (expected \(expected))"
        case let .noReferenceHamiltonian(file):
            return "\(file): missing file: the reference structure has no DFT Hamiltonian to compare with"
        case let .noPredictions(root):
            return "\(root): no predicted Hamiltonians found (looked for \(PredictionFiles.names.joined(separator: ", ")) in this folder and its sub-folders)"
        case let .incompatible(file, field, message):
            return "\(file): \(field): \(message)"
        case let .invalidInput(file, message):
            return "\(file): \(message)"
        }
    }
    public var errorDescription: String? { description }
}

/// Knobs of an evaluation; the defaults are those documented in docs/evaluation.md.
public struct EvaluationOptions: Sendable, Equatable {
    /// Bands above the occupied ones included in the band-error window.
    public var bandsAbove: Int = 4
    /// k-points per 1/Å on automatic k-paths (a K_PATH file in the reference folder wins).
    public var kpointDensity: Double = 30
    /// At least this many k-points on an automatic path (small Brillouin zones of supercells).
    /// Lower than `harmose bands`' 150: an error average needs fewer points than a picture, and
    /// the band comparison is most of an evaluation's time.
    public var minimumKPoints = 60
    /// Compute band errors at all (they cost one eigenproblem per k-point and structure, twice).
    public var computeBands = true
    /// How many (reference, predicted) entry pairs the parity plot keeps (reservoir sample,
    /// seeded, so reruns draw the same picture); metrics always use every entry.
    public var paritySample = 200_000
    /// Remove S(k) eigen-directions below this value before solving, for both H_DFT and H_pred
    /// (same S, so the same directions). Nearly linearly dependent basis sets (S eigenvalues
    /// ~1e-4, e.g. GPAW dzp) amplify an error δ in H along those directions to δ/s — spurious
    /// deep states that reorder every band. nil: no filtering.
    public var overlapThreshold: Double? = 1e-3
    /// A `bands` stage's artifact: each structure's reference bands are read from
    /// `<it>/bands/<name>/band.h5` — its k-points, overlap filter and energies — instead of being
    /// recomputed, and the predicted bands are solved at those k-points with that filter
    /// (`kpointDensity` and `overlapThreshold` then do not apply).
    public var referenceBands: URL?
    /// A second threshold whose windowed band error is reported beside (DeepH uses 5e-4); nil: none.
    /// Reported, never chosen per test set: the primary number is the one at `overlapThreshold`.
    public var alternativeOverlapThreshold: Double? = 5e-4
    /// Leave out reference structures that have no prediction (listed in metrics.json
    /// `skipped_references`) instead of failing — when only one split was predicted.
    public var skipMissingPredictions = false
    /// k-points solved at once (see `BlochSystem.defaultSolveWorkers`, the default).
    public var workers = BlochSystem.defaultSolveWorkers
    /// Write a DFT-vs-predicted band overlay for at most this many periodic structures.
    public var bandPlots = 12
    public init() {}
}
