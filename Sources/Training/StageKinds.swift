// Pipeline stage kinds owned by Training: `train` (a Trainer run into the stage's artifact
// directory) and `predict` (a Predictor run over structures). Data inputs may be paths or the
// artifact of an `ingest` stage (its structures/ folder is used).
import Autograd
import Foundation
import StageAPI

/// The execution context of a Training stage: the runner's thread budget for it (data-parallel
/// workers and kernel threads). Results never depend on it.
func executionContext(for context: StageContext) -> ExecutionContext { ExecutionContext(threads: context.threads) }

/// The dataset folder behind a data input: an ingest artifact's structures/ folder, or the path.
func resolveDataInput(_ url: URL) -> URL {
    let store = url.appendingPathComponent("structures")
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: store.path, isDirectory: &isDir), isDir.boolValue,
       FileManager.default.fileExists(atPath: url.appendingPathComponent("index.tsv").path) {
        return store
    }
    return url
}

public struct TrainStageKind: StageKind {
    public init() {}
    public let name = "train"
    public let summary = "Trains the stage-1 equivariant model; writes best.h5, last.h5, splits.json, learning_curve.jsonl, metrics.json (seconds per epoch: timings.jsonl, the run record)."
    /// 2: no wall-clock values in the curve, metrics.json or checkpoints (they moved to timings.jsonl).
    public let artifactVersion = 2
    public let parameters: [ParameterSpec] = [
        ParameterSpec("epochs", .integer, default: .int(0), minimum: 0, help: "epochs (0: the config's)"),
        ParameterSpec("seed", .integer, default: .int(-1), minimum: -1, help: "seed of the split and batch order (-1: the config's)"),
        ParameterSpec("max_seconds", .number, default: .double(0), minimum: 0, help: "stop after this many seconds of training (0: the config's)"),
        ParameterSpec("max_structures", .integer, default: .int(0), minimum: 0, help: "use at most this many structures (0: the config's)"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("data", .pathOrStage, multiple: true, help: "training structures: folders, archives or ingest stages"),
        InputSpec("config", .path, required: false, help: "training configuration JSON (docs/model.md); default: the defaults"),
        InputSpec("features", .stage(kinds: ["features"]), required: false,
                  help: "a features stage run on the same data with the same config: the edge geometry is read from it, not recomputed"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        var config = try context.inputs["config"]?.first.map { try TrainConfig.load($0) } ?? TrainConfig()
        let p = context.parameters
        if p.int("epochs") > 0 { config.epochs = p.int("epochs") }
        if p.int("seed") >= 0 { config.seed = UInt64(p.int("seed")) }
        if p.double("max_seconds") > 0 { config.maxSeconds = p.double("max_seconds") }
        if p.int("max_structures") > 0 { config.maxStructures = p.int("max_structures") }
        let trainer = Trainer(config: config, outputDirectory: context.outputDirectory)
        trainer.execution = executionContext(for: context)
        trainer.features = context.inputs["features"]?.first
        trainer.group = context.group
        trainer.log = { context.log($0) }
        trainer.progress = { done, total, _ in context.progress(done: done, total: total) }
        let data = (context.inputs["data"] ?? []).map(resolveDataInput)
        let s = try trainer.run(data: data)
        var metrics: [String: JSONValue] = [
            "epochs_run": .int(s.epochsRun), "best_epoch": .int(s.bestEpoch),
            "val_mae_meV": .double(s.validation.mae * 1000), "seconds": .double(s.seconds),
        ]
        if let t = s.test { metrics["test_mae_meV"] = .double(t.mae * 1000) }
        return metrics
    }

    /// Under mpirun every rank trains its share of each batch (Engine.swift, DataParallel.swift).
    public var rankParallelism: RankParallelism { .collective }
}

public struct PredictStageKind: StageKind {
    public init() {}
    public let name = "predict"
    public let summary = "Predicts Hamiltonians with a trained model: one folder per structure with hamiltonian_pred.h5 (dock) or hamiltonians_pred.h5 (legacy)."
    /// 2: info.json of predictions carries the input's `occupation`.
    public let artifactVersion = 2
    public let parameters: [ParameterSpec] = [
        ParameterSpec("checkpoint", .choice(["best", "last"]), default: .string("best"), help: "which checkpoint of a train stage to use"),
        ParameterSpec("split", .choice(["all", "train", "validation", "test"]), default: .string("all"),
                      help: "predict only the structures of this split of the train stage's splits.json (all: every input structure)"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("model", .pathOrStage, help: "a train stage, a training folder or a checkpoint file"),
        InputSpec("data", .pathOrStage, multiple: true, help: "structures to predict: folders, archives or ingest stages"),
    ]

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        var model = context.input("model")
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: model.path, isDirectory: &isDir), isDir.boolValue {
            model = model.appendingPathComponent(context.parameters.string("checkpoint") + ".h5")
        }
        var only: Set<String>? = nil
        let split = context.parameters.string("split")
        if split != "all" {
            let file = context.input("model").appendingPathComponent("splits.json")
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw TrainingError(file: file.path, field: "params.split", message: "split \"\(split)\" needs the train stage's splits.json")
            }
            let s = try Splits.read(file)
            only = Set(split == "train" ? s.train : split == "validation" ? s.validation : s.test)
            guard !(only!.isEmpty) else { throw TrainingError(file: file.path, field: split, message: "the \(split) split is empty") }
        }
        let predictor = try Predictor(checkpoint: model)
        let results = try executionContext(for: context).withoutGradients.run { try predictor.predict(inputs: (context.inputs["data"] ?? []).map(resolveDataInput), outputDirectory: context.outputDirectory,
                                            only: only, owns: { context.partition.owns($0) }, log: { context.log($0) },
                                            progress: { context.progress(done: $0, total: $1) }) }
        let seconds = results.reduce(0) { $0 + $1.seconds }
        return ["structures": .int(results.count), "blocks": .int(results.reduce(0) { $0 + $1.blocks }),
                "ms_per_structure": .double(1000 * seconds / Double(max(results.count, 1)))]
    }

    public var rankParallelism: RankParallelism { .perStructure }

    /// One folder per structure, moved together by the runner; nothing else to join.
    public func merge(_ parts: [StagePart]) throws -> [String: JSONValue] {
        let structures = parts.reduce(0) { $0 + ($1.metrics["structures"]?.intValue ?? 0) }
        let ms = parts.reduce(0.0) { $0 + Double($1.metrics["structures"]?.intValue ?? 0) * ($1.metrics["ms_per_structure"]?.doubleValue ?? 0) }
        return ["structures": .int(structures), "blocks": StagePart.sum(parts, "blocks"),
                "ms_per_structure": .double(ms / Double(max(structures, 1)))]
    }
}
