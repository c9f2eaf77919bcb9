// `harmose bench-stage2` (hidden): the pieces of the stage-2 ablation (tools/bench/stage2.sh)
// that no product command does: the test split of a stage-1 run as its own dataset, randomly
// rotated copies of it (structure, H and S rotated together), and predictions with stage-1 or
// hybrid checkpoints. `harmose eval --compare` then builds the table.
import ArgumentParser
import Autograd
import Formats
import Foundation
import Models
import SO3
import Structures
import Training

public struct BenchStage2Command: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-stage2",
        abstract: "Ablation helpers for stage 2 (used by tools/bench/stage2.sh).",
        shouldDisplay: false,
        subcommands: [TestSet.self, Predict.self]
    )
    public init() {}

    public struct TestSet: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "test-set",
            abstract: "Write the test split of a training run, and rotated copies of it."
        )
        @Option(help: ArgumentHelp("splits.json of the stage-1 run.", valueName: "file"))
        public var splits: String
        @Argument(help: "The dataset the run was trained on.")
        public var data: [String]
        @Option(help: ArgumentHelp("Output folder for the test structures.", valueName: "dir"))
        public var out: String
        @Option(name: .customLong("rotated-out"), help: ArgumentHelp("Output folder for rotated copies.", valueName: "dir"))
        public var rotatedOut: String
        @Option(help: "Seed of the random rotations (one per structure).")
        public var seed: UInt64 = 7
        public init() {}

        public func run() throws {
            let split = try Splits.read(URL(fileURLWithPath: splits))
            let wanted = Set(split.test.isEmpty ? split.validation : split.test)
            guard !wanted.isEmpty else { throw ValidationError("\(splits) has neither test nor validation structures") }
            let records = try Dataset.readRecords(data.map { URL(fileURLWithPath: $0) }).filter { wanted.contains($0.name) }
            let out = URL(fileURLWithPath: self.out), rotatedOut = URL(fileURLWithPath: self.rotatedOut)
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: rotatedOut, withIntermediateDirectories: true)
            var rng = SplitMix64(seed: seed)
            for r in records {
                try FormatWriter.write(r, to: out.appendingPathComponent(r.name), format: .deephDock)
                let rotation = Rotation(uniform: rng.nextUnit(), rng.nextUnit(), rng.nextUnit())
                var rotated = r
                (rotated.structure, rotated.hamiltonian) = try BlockTargets.rotated(r.structure, operator: r.hamiltonian, by: rotation)
                rotated.overlap = try r.overlap.map { try OrbitalRotation.rotate(operator: $0, structure: r.structure, rotation: rotation) }
                try FormatWriter.write(rotated, to: rotatedOut.appendingPathComponent(r.name), format: .deephDock)
            }
            print("\(records.count) test structures → \(out.path); rotated copies → \(rotatedOut.path)")
        }
    }

    public struct Predict: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "predict",
            abstract: "Predict with a stage-1 or hybrid checkpoint (chosen by its kind)."
        )
        @Option(help: ArgumentHelp("Checkpoint or training/refine folder.", valueName: "CKPT"))
        public var model: String
        @Argument(help: "Structures to predict.")
        public var inputs: [String]
        @Option(help: ArgumentHelp("Output folder.", valueName: "dir"))
        public var out: String
        public init() {}

        public func run() throws {
            let predictor = try Predictor(checkpoint: URL(fileURLWithPath: model))
            let start = Date()
            let results = try predictor.predict(inputs: inputs.map { URL(fileURLWithPath: $0) }, outputDirectory: URL(fileURLWithPath: out))
            let seconds = Date().timeIntervalSince(start)
            print(String(format: "%@ model: %d structures predicted in %.3f s (%.4f s each, median %.4f s) → %@",
                         predictor.kind.rawValue, results.count, seconds, seconds / Double(max(results.count, 1)),
                         median(results.map(\.seconds)), out))
        }

        func median(_ x: [Double]) -> Double {
            guard !x.isEmpty else { return .nan }
            let s = x.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
        }
    }
}
