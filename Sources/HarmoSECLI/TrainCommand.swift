// `harmose train`: a thin shell over Training.Trainer.
import ArgumentParser
import Cluster
import Autograd
import Foundation
import StageAPI
import Training

public struct TrainCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the stage-1 equivariant Hamiltonian model on DFT data.",
        discussion: """
        DATA is one or more structure folders, folders of structure folders, or archives (DeepH-dock \
        or DeepH legacy). CONFIG is a JSON file; every key is optional (see docs/model.md), e.g.
          {"epochs": 100, "batch_size": 4, "learning_rate": 0.002, "loss": "mse",
           "model": {"irreps": "16x0e+8x1o+4x2e+4x3o+2x4e", "layers": 2}}

        DIR receives config.json (resolved), splits.json (seeded train/validation/test split), \
        learning_curve.jsonl (one JSON object per epoch), best.h5 and last.h5 (checkpoints with \
        optimizer and schedule state) and metrics.json (validation and test MAE/RMSE in meV and µEh): \
        the same bytes in every run with the same inputs. Wall-clock time goes to timings.jsonl \
        (per epoch: epoch_seconds, elapsed_seconds, structures and edges per second). \
        --resume continues from DIR/last.h5 with the same split; the result equals an uninterrupted run.

        Examples:
          harmose train --config configs/demo-train.json data/molecules --out runs/molecules
          harmose train --config configs/demo-train.json data/molecules --out runs/molecules --resume
        """
    )

    @Option(name: .customLong("config"), help: ArgumentHelp("Training configuration (JSON).", valueName: "CONFIG.json"))
    public var config: String

    @Argument(help: "Training data: structure folders, folders of them, or archives.")
    public var data: [String]

    @Option(name: .customLong("out"), help: ArgumentHelp("Output folder for checkpoints, splits and the learning curve.", valueName: "DIR"))
    public var out: String

    @Flag(help: "Continue from DIR/last.h5.")
    public var resume = false

    @Flag(name: .shortAndLong, help: "Print only the final summary.")
    public var quiet = false

    @Option(help: ArgumentHelp("Threads (data-parallel workers, one model replica each; default: every core). Results are bit-identical for any count.", valueName: "N"))
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init() {}

    public func validate() throws {
        guard !data.isEmpty else { throw ValidationError("give at least one DATA path") }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    public func run() throws {
        let cfg = try TrainConfig.load(URL(fileURLWithPath: config))
        let trainer = Trainer(config: cfg, outputDirectory: URL(fileURLWithPath: out))
        // Under mpirun/srun every rank trains its share of each batch; rank 0 reports and writes.
        let group = Cluster.group()
        trainer.group = group
        trainer.execution = ExecutionContext(threads: threads)
        let bar = TerminalProgress()
        if !quiet, group.isRoot {
            trainer.log = { bar.message($0) }
            trainer.progress = { done, total, loss in bar.update(done: done, total: total, suffix: String(format: "loss %.4g", loss)) }
        }
        let summary = try group.failingTogether { try trainer.run(data: data.map { URL(fileURLWithPath: $0) }, resume: resume) }
        bar.finish()
        var line = String(format: "best epoch %d: validation MAE %.3f meV", summary.bestEpoch, summary.validation.mae * 1000)
        if let t = summary.test { line += String(format: ", test MAE %.3f meV (%.2f µEh)", t.mae * 1000, t.mae / 27.211386245988 * 1e6) }
        if group.isRoot { print(line + " → \(out)/best.h5") }
    }
}
