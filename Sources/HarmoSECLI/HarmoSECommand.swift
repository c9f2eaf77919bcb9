// HarmoSECLI: the `harmose` command tree. Each command is a thin shell over a library module so
// tests can parse and run it without spawning a process.
import ArgumentParser

public struct HarmoSECommand: ParsableCommand {
    public static let version = "0.1.0"
    public static let configuration = CommandConfiguration(
        commandName: "harmose",
        abstract: "Learn and predict DFT Hamiltonians of molecules and crystals (HarmoSE).",
        discussion: """
        HarmoSE reads DFT Hamiltonians in the DeepH formats, builds neighbor graphs, computes band
        structures, and trains a two-stage (equivariant + Transformer) model that predicts H for
        new structures. Batch work runs through `harmose run`, driven by pipeline.json.
        """,
        version: version,
        subcommands: [
            InspectCommand.self,
            ConvertCommand.self,
            OverlapCommand.self,
            BandsCommand.self,
            DOSCommand.self,
            RunCommand.self,
            StatusCommand.self,
            GCCommand.self,
            StageWorkerCommand.self,
            TrainCommand.self,
            ConvergenceCommand.self,
            RefineCommand.self,
            PredictCommand.self,
            EvalCommand.self,
            BenchBandsCommand.self,
            BenchSparseCommand.self,
            BenchSO3Command.self,
            BenchAutogradCommand.self,
            BenchStage2Command.self,
            BenchAllReduceCommand.self,
        ]
    )
    public init() {}
}
