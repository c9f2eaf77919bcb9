// `harmose predict`: a thin shell over Training.Predictor.
import ArgumentParser
import Formats
import Foundation
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
        atom pair within the model's cutoff.

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

    @Flag(name: .shortAndLong, help: "Print only the summary.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one INPUT path") }
        if format == .cp2k { throw ValidationError("--format cp2k: CP2K output is read, not written; use deeph-dock, deeph-legacy or abacus-csr") }
    }

    public func run() throws {
        let predictor = try Predictor(checkpoint: URL(fileURLWithPath: model))
        let bar = ProgressBar()
        let results = try predictor.predict(inputs: inputs.map { URL(fileURLWithPath: $0) }, outputDirectory: URL(fileURLWithPath: out), format: format,
                                            log: { if !quiet { bar.message($0) } },
                                            progress: { bar.update(done: $0, total: $1) })
        bar.finish()
        let seconds = results.reduce(0) { $0 + $1.seconds }
        print(String(format: "predicted %d structure(s) in %.2f s (%.1f ms per structure) → %@", results.count, seconds,
                     1000 * seconds / Double(max(results.count, 1)), out))
    }
}
