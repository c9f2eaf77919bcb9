// `harmose predict`: a thin shell over Training.Predictor.
import ArgumentParser
import Autograd
import Formats
import Foundation
import StageAPI
import Structures
import Training

public struct PredictCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict Hamiltonians of structures with a trained model.",
        discussion: """
        CKPT is a checkpoint (best.h5, last.h5) or a training output folder (its best.h5 is used). \
        Each INPUT is a structure folder, a folder of them, or an archive; only the structure and \
        the orbital basis are needed, not the DFT Hamiltonian. Blocks are predicted on the overlap's \
        sparsity when overlap.h5/overlaps.h5 is present, else on the Hamiltonian's, else for every \
        atom pair within the model's cutoff. A dock structure without overlap.h5 whose info.json \
        names a basis ("basis": "dzp" with "code": "gpaw", or "def2-svp") gets S computed from the \
        basis first (see `harmose overlap`), written beside the prediction.

        Large structures (over 800 atoms, or with S computed from the basis) are predicted in \
        chunks, their blocks streamed into a chunked, compressed hamiltonian_pred.h5 (progress bar \
        with ETA). The model is evaluated layer by layer over chunks of atoms on every core — a \
        hybrid's stage 1, then its stage 2 — keeping only the node and edge features between \
        layers (≈ 0.6 GiB per 10⁴ graphene atoms with the demo network, ≈ 0.1 GiB more for the \
        shipped hybrid's stage 2). This gives the whole-structure numbers up to float rounding.

        DIR is written as one unit (a temporary folder renamed when every structure is done); an \
        existing DIR is replaced only when it holds structure folders (an earlier prediction).

        For each structure, DIR/<name>/ receives the input's layout with the prediction as \
        hamiltonian_pred.h5 (DeepH-dock) or hamiltonians_pred.h5 (DeepH legacy), in eV, readable by \
        DeepH tools. With --format abacus-csr (the default for ABACUS input) DIR/<name>/ is an \
        ABACUS run folder (STRU, OUT.ABACUS/data-HR-sparse_SPIN0.csr with the predicted H in Ry, \
        data-SR-sparse_SPIN0.csr with the input's S) that ABACUS tools read. CP2K input is written \
        as DeepH-dock unless --format says otherwise.

        Example:
          harmose predict --model runs/molecules data/molecules --out runs/molecules/pred
          harmose predict --model runs/mos2 MoS2-run --out pred --format abacus-csr
        """
    )

    @Option(name: .customLong("model"), help: ArgumentHelp("Checkpoint file or training folder.", valueName: "CKPT"))
    public var model: String

    @Argument(help: "Structures to predict.")
    public var inputs: [String]

    @Option(name: .customLong("out"), help: ArgumentHelp("Output folder.", valueName: "DIR"))
    public var out: String

    @Option(name: .customLong("format"), help: ArgumentHelp("Output layout: deeph-dock, deeph-legacy or abacus-csr (default: the input's).", valueName: "layout"))
    public var format: DFTFormat?

    @Option(name: .customLong("chunk-atoms"), help: "Atoms per chunk for large structures (default 128): the model — stage 1, and a hybrid's stage 2 after it — is evaluated layer by layer over chunks of this many atoms, one chunk per core at a time. Memory beyond the features of the whole structure grows with it.")
    public var chunkAtoms: Int?

    @Option(name: .customLong("basis-path"), help: "Folder searched first for basis files when S is computed (repeatable).")
    public var basisPath: [String] = []

    @Flag(name: .shortAndLong, help: "Print only the summary.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one INPUT path") }
        if format == .cp2k { throw ValidationError("--format cp2k: CP2K output is read, not written; use deeph-dock, deeph-legacy or abacus-csr") }
        if let chunkAtoms, chunkAtoms < 1 { throw ValidationError("--chunk-atoms must be ≥ 1") }
    }

    public func run() throws {
        MemoryTuning.useOneArena()   // the chunk workers' large arrays reuse one heap (no page-fault churn)
        let predictor = try Predictor(checkpoint: URL(fileURLWithPath: model))
        let bar = TerminalProgress()
        let atomBar = TerminalProgress(isTerminal: !quiet && isatty(STDERR_FILENO) == 1)
        // The whole set is one unit: built in a hidden temporary folder beside DIR and renamed
        // into place when every structure is written, so a failed or killed predict leaves no
        // partial set that looks complete (the temporary is removed by the next predict into
        // DIR, or by `harmose gc --under`).
        let destination = URL(fileURLWithPath: out)
        let predictedNames = Set(DFTFormat.allCases.map { Predictor.predictedFileName($0) })
        try DatasetSource.checkReplaceableOutput(destination, field: "--out", allowing: predictedNames)
        var results: [PredictionResult] = []
        try AtomicOutput.writeDirectory(at: destination) { staging in
            results = try predictor.predict(inputs: inputs.map { URL(fileURLWithPath: $0) }, outputDirectory: staging, format: format,
                                            options: LargeStructureOptions(chunkAtoms: chunkAtoms, basisSearchPaths: basisPath),
                                            log: { if !quiet { atomBar.finish(); bar.message($0.replacingOccurrences(of: staging.path, with: destination.path)) } },
                                            progress: { bar.update(done: $0, total: $1) },
                                            atomProgress: { atomBar.update(done: $0, total: $1, suffix: "atoms") })
        }
        bar.finish()
        let seconds = results.reduce(0) { $0 + $1.seconds }
        print(String(format: "predicted %d structure(s) in %.2f s (%.1f ms per structure) → %@", results.count, seconds,
                     1000 * seconds / Double(max(results.count, 1)), out))
    }
}
