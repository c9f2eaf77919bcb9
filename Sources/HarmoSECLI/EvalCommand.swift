// `harmose eval`: predicted vs DFT Hamiltonians (metrics.json, table, parity.svg), or an ablation
// table over several prediction sets. A thin shell over Evaluation.
import ArgumentParser
import Bands
import Evaluation
import Foundation
import Pipeline
import StageAPI

public struct EvalCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Compare predicted Hamiltonians with DFT: H errors in meV, band errors, parity plot, ablation tables.",
        discussion: """
        --ref is one structure folder or a folder of them (DeepH-dock or legacy). --pred is a \
        folder holding, per structure, hamiltonian_pred.h5 (dock) or hamiltonians_pred.h5 (legacy) \
        — or hamiltonian.h5 / hamiltonians.h5 — in a sub-folder of the same name as the reference \
        structure (matched by relative path, else by last folder name). A prediction in the \
        reference's layout is read on the reference's structure; one in the other layout needs its \
        own structure files beside it. Every reference structure needs a prediction, unless \
        --skip-missing (e.g. when only the test split was predicted).

        H error: e = H_pred − H_DFT over every entry of every reference block (missing predicted \
        blocks count as 0), as MAE, RMSE and max |e| in meV: overall, on-site (R = 0, i = j) vs \
        off-site, per element pair, per l pair and per orbital-shell pair.

        Band error: eigenvalues of H_pred and of H_DFT, both with the DFT overlap, compared band by \
        band along the reference's K_PATH (or the automatic standard path) in a window of the \
        occupied bands plus --bands-above more; molecules (all R = 0) at Γ, with HOMO, LUMO and \
        gap errors. Near-singular overlaps amplify any error in H along their null directions \
        into spurious deep states, so S(k) directions with eigenvalue below --overlap-threshold \
        (default 1e-3) are removed for both. Definitions: docs/evaluation.md.

        Outputs in --out: metrics.json (stable keys), table.txt (the table printed), parity.svg, \
        bands/NAME.svg (DFT vs predicted bands of periodic structures).

        Ablation: --compare NAME=DIR (repeat per model variant) evaluates each prediction set \
        against --ref with the same settings and writes ablation.json and ablation.md; with \
        --rotated-ref DIR and --compare-rotated NAME=DIR it adds each variant's errors on rotated \
        copies of the test set.

        Examples:
          harmose eval --pred outputs/predict --ref data/test --out outputs/eval
          harmose eval --pred outputs/predict --ref data/test --json > metrics.json
          harmose eval --ref data/test --compare stage1=out/p1 --compare hybrid=out/p2 --out outputs/ablation
        """
    )

    @Option(help: ArgumentHelp("Predictions: a folder of structure folders with hamiltonian_pred.h5 (or one such folder).", valueName: "dir"))
    public var pred: String?

    @Option(help: ArgumentHelp("Reference DFT dataset: a structure folder or a folder of them.", valueName: "dir"))
    public var ref: String

    @Option(help: ArgumentHelp("Output folder (files inside are replaced atomically).", valueName: "dir"))
    public var out: String = "outputs/eval"

    @Flag(help: "Print metrics.json (or ablation.json) to stdout instead of the table.")
    public var json = false

    @Option(name: .customLong("compare"), parsing: .singleValue,
            help: ArgumentHelp("A model variant for the ablation table (repeatable).", valueName: "name=dir"))
    public var compare: [String] = []

    @Option(name: .customLong("compare-rotated"), parsing: .singleValue,
            help: ArgumentHelp("A variant's predictions on the rotated copies (repeatable).", valueName: "name=dir"))
    public var compareRotated: [String] = []

    @Option(name: .customLong("rotated-ref"), help: ArgumentHelp("Reference for the rotated copies.", valueName: "dir"))
    public var rotatedRef: String?

    @Option(name: .customLong("bands-above"), help: "Bands above the occupied ones in the band-error window.")
    public var bandsAbove: Int = 4

    @Option(name: .customLong("kpoint-density"), help: "k-points per 1/Å on automatic k-paths.")
    public var kpointDensity: Double = 30

    @Option(name: .customLong("overlap-threshold"),
            help: ArgumentHelp("Drop S(k) eigen-directions below this before solving both H_DFT and H_pred (0: keep all).", valueName: "value"))
    public var overlapThreshold: Double = 1e-3

    @Option(name: .customLong("second-overlap-threshold"),
            help: ArgumentHelp("Also report the band error at this threshold (DeepH's 5e-4; 0: off). Never used to pick the headline number.", valueName: "value"))
    public var secondOverlapThreshold: Double = 5e-4

    @Option(help: "k-points solved at once (default 1 for now, see BlochSystem.defaultSolveWorkers: Debian's OpenBLAS 0.3.21 read past its operands when solves ran concurrently).")
    public var workers: Int = BlochSystem.defaultSolveWorkers

    @Flag(name: .customLong("skip-missing"), help: "Leave out reference structures without a prediction instead of failing.")
    public var skipMissing = false

    @Flag(name: .customLong("no-bands"), help: "Skip band errors (H errors only).")
    public var noBands = false

    @Option(name: .customLong("parity-sample"), help: "H entries drawn into the parity plot (metrics use all).")
    public var paritySample: Int = 200_000

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    public var quiet = false

    public init() {}

    static func namedPaths(_ values: [String], option: String) throws -> [(name: String, predictions: URL)] {
        try values.map { v in
            guard let eq = v.firstIndex(of: "="), eq != v.startIndex, v.index(after: eq) != v.endIndex else {
                throw ValidationError("\(option) expects NAME=DIR, got '\(v)'")
            }
            return (String(v[..<eq]), URL(fileURLWithPath: String(v[v.index(after: eq)...])))
        }
    }

    public func validate() throws {
        if pred == nil && compare.isEmpty { throw ValidationError("give --pred DIR, or --compare NAME=DIR for an ablation table") }
        if pred != nil && !compare.isEmpty { throw ValidationError("--pred and --compare are exclusive: add the predictions as one more --compare NAME=DIR") }
        if !compareRotated.isEmpty && compare.isEmpty { throw ValidationError("--compare-rotated needs --compare") }
        if !compareRotated.isEmpty && rotatedRef == nil { throw ValidationError("--compare-rotated needs --rotated-ref DIR") }
        guard bandsAbove >= 0 else { throw ValidationError("--bands-above must be ≥ 0, got \(bandsAbove)") }
        guard kpointDensity > 0, kpointDensity.isFinite else { throw ValidationError("--kpoint-density must be positive") }
        guard overlapThreshold >= 0, overlapThreshold.isFinite else { throw ValidationError("--overlap-threshold must be ≥ 0") }
        guard secondOverlapThreshold >= 0, secondOverlapThreshold.isFinite else { throw ValidationError("--second-overlap-threshold must be ≥ 0") }
        guard paritySample >= 0 else { throw ValidationError("--parity-sample must be ≥ 0") }
        _ = try Self.namedPaths(compare, option: "--compare")
        _ = try Self.namedPaths(compareRotated, option: "--compare-rotated")
    }

    var options: EvaluationOptions {
        var o = EvaluationOptions()
        o.bandsAbove = bandsAbove
        o.kpointDensity = kpointDensity
        o.computeBands = !noBands
        o.paritySample = paritySample
        o.skipMissingPredictions = skipMissing
        o.overlapThreshold = overlapThreshold > 0 ? overlapThreshold : nil
        o.alternativeOverlapThreshold = secondOverlapThreshold > 0 ? secondOverlapThreshold : nil
        o.workers = max(1, workers)
        return o
    }

    public func run() throws {
        if !compare.isEmpty {
            let table = try executeAblation { if !quiet && !json { FileHandle.standardError.write(Data(($0 + "\n").utf8)) } }
            if json { print(table.json.prettyString, terminator: "") } else if !quiet { print(table.markdown, terminator: "") }
            return
        }
        let report = try execute()
        if json { print(report.json.prettyString, terminator: "") } else if !quiet {
            print(report.text, terminator: "")
            print("→ \(out)/metrics.json, table.txt, parity.svg")
        }
    }

    /// Evaluates --pred against --ref and writes the outputs.
    @discardableResult
    public func execute() throws -> EvaluationReport {
        let bar = TerminalProgress(isTerminal: !quiet && !json && isatty(STDERR_FILENO) == 1)
        let report = try Evaluator.evaluate(predictions: URL(fileURLWithPath: pred!), reference: URL(fileURLWithPath: ref),
                                            options: options) { done, total in bar.update(done: done, total: total, suffix: "structures") }
        bar.finish()
        try report.write(to: URL(fileURLWithPath: out))
        return report
    }

    /// Evaluates every --compare variant and writes ablation.json and ablation.md.
    @discardableResult
    public func executeAblation(log: (String) -> Void = { _ in }) throws -> AblationTable {
        let table = try AblationTable.evaluate(variants: try Self.namedPaths(compare, option: "--compare"),
                                               reference: URL(fileURLWithPath: ref),
                                               rotated: try Self.namedPaths(compareRotated, option: "--compare-rotated"),
                                               rotatedReference: rotatedRef.map { URL(fileURLWithPath: $0) },
                                               options: options, progress: log)
        try table.write(to: URL(fileURLWithPath: out))
        return table
    }
}
