// `harmose refine`: a thin shell over Training.Refiner (stage 2 of the HarmoSE hybrid).
import ArgumentParser
import Cluster
import Autograd
import Foundation
import StageAPI
import Training

public struct RefineCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "refine",
        abstract: "Train stage 2 (graph Transformer) of the hybrid on top of a trained stage-1 model.",
        discussion: """
        STAGE1 is a `harmose train` output folder (its best.h5 and splits.json are used) or a \
        checkpoint file. Stage 1 stays frozen; stage 2 learns the residual H_DFT − H_stage1. DATA \
        is the dataset stage 1 was trained on. CONFIG is optional JSON; every key is optional \
        (see docs/stage2.md), e.g.
          {"epochs": 50, "learning_rate": 0.001, "joint_epochs": 5,
           "stage2": {"mode": "strict", "width": 32, "heads": 4, "layers": 2, "sh_lmax": 7}}

        DIR receives best.h5 and last.h5 (hybrid checkpoints: stage 1 exactly as trained plus \
        stage 2, marked "kind": "hybrid"), learning_curve.jsonl, metrics.json (validation and test \
        MAE of the hybrid and of stage 1 alone), config.json and splits.json; wall-clock time per \
        epoch in timings.jsonl. Predict with them via \
        `harmose bench-stage2 predict --model DIR INPUT --out PRED` (see docs/stage2.md).

        Examples:
          harmose refine --stage1 runs/molecules data/molecules --out runs/molecules-hybrid
          harmose refine --stage1 runs/molecules --config strict.json data/molecules --out runs/strict
          harmose refine --stage1 runs/molecules --init runs/strict --config strict-band.json data/molecules --out runs/strict-band

        Stage 2 corrects only the block groups (element pairs) of the training structures; \
        blocks of other pairs keep stage 1's prediction.
        """
    )

    @Option(name: .customLong("stage1"), help: ArgumentHelp("Stage-1 training folder or checkpoint.", valueName: "STAGE1"))
    public var stage1: String

    @Option(name: .customLong("config"), help: ArgumentHelp("Refine configuration (JSON).", valueName: "CONFIG.json"))
    public var config: String?

    @Option(name: .customLong("init"), help: ArgumentHelp("Start from this hybrid's weights (a refine folder or checkpoint of the same STAGE1 — jointly tuned or not — with the same stage-2 architecture) instead of STAGE1 and a random stage 2: fine-tuning, e.g. adding a band loss to a converged refine. STAGE1 still gives the split.", valueName: "HYBRID"))
    public var initialHybrid: String?

    @Option(help: ArgumentHelp("Stage-2 mode: empirical (the paper's) or strict (equivariant by construction); overrides the config."))
    public var mode: String?

    @Argument(help: "Training data: structure folders, folders of them, or archives.")
    public var data: [String]

    @Option(name: .customLong("out"), help: ArgumentHelp("Output folder for hybrid checkpoints and the learning curve.", valueName: "DIR"))
    public var out: String

    @Flag(name: .shortAndLong, help: "Print only the final summary.")
    public var quiet = false

    @Option(help: ArgumentHelp("Threads (data-parallel workers, one model replica each; default: every core). Results are bit-identical for any count.", valueName: "N"))
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init() {}

    public func validate() throws {
        guard !data.isEmpty else { throw ValidationError("give at least one DATA path") }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
        if let mode, !["empirical", "strict"].contains(mode) { throw ValidationError("--mode must be empirical or strict, got \(mode)") }
    }

    public func run() throws {
        var cfg = try config.map { try RefineConfig.load(URL(fileURLWithPath: $0)) } ?? RefineConfig()
        if let mode { cfg.stage2.mode = mode == "strict" ? .strict : .empirical }
        let refiner = Refiner(config: cfg, stage1: URL(fileURLWithPath: stage1), outputDirectory: URL(fileURLWithPath: out))
        // Under mpirun/srun every rank trains its share of each batch; rank 0 reports and writes.
        let group = Cluster.group()
        refiner.initialHybrid = initialHybrid.map { URL(fileURLWithPath: $0) }
        refiner.group = group
        refiner.execution = ExecutionContext(threads: threads)
        let bar = TerminalProgress()
        if !quiet, group.isRoot {
            refiner.log = { bar.message($0) }
            refiner.progress = { done, total, loss in bar.update(done: done, total: total, suffix: String(format: "loss %.4g", loss)) }
        }
        let s = try group.failingTogether { try refiner.run(data: data.map { URL(fileURLWithPath: $0) }) }
        bar.finish()
        var line = String(format: "best epoch %d: validation MAE %.3f meV (stage 1 alone %.3f meV)", s.bestEpoch,
                          s.validation.hybrid.mae * 1000, s.validation.stage1.mae * 1000)
        if let t = s.test { line += String(format: ", test MAE %.3f meV (stage 1 alone %.3f meV)", t.hybrid.mae * 1000, t.stage1.mae * 1000) }
        if group.isRoot { print(line + " → \(out)/best.h5") }
    }
}
