// Harnesses for the command and pipeline inputs: K_PATH files, pipeline.json, train and refine
// configurations, and checkpoints (HDF5 files with a model configuration and parameters).
import Autograd
import Bands
import Foundation
import HarmoSECLI
import Models
import Pipeline
import Structures
import Training

extension Harnesses {
    static let kpath = Harness(
        name: "kpath", summary: "K_PATH text (segments, point counts, coordinates, labels) expanded on a lattice",
        seeds: { try [FuzzFixtures.bytes("peer/deeph-dock/MoTe2/K_PATH"),
                      Array("100 0 0 0 0.5 0 0 G X\n50 0.5 0 0 0.5 0.5 0 X M # comment\n".utf8)] }
    ) { bytes in
        let path = try KPath.parse(String(decoding: bytes, as: UTF8.self), file: "K_PATH")
        try path.checkSize(source: "K_PATH")
        let lattice = Lattice(vectors: [Vec3(0, 2.7, 2.7), Vec3(2.7, 0, 2.7), Vec3(2.7, 2.7, 0)])
        _ = path.kpoints.count
        _ = path.distances(lattice).last
        _ = path.boundaryLabels
        _ = path.text
    }

    /// The production stage kinds, built once: the registry is the program's constant, not input,
    /// and building it hashes every kind's code identity (a fifth of an execution when rebuilt).
    static let productionRegistry = Result { try StageKinds.registry() }

    static let pipelineJSON = Harness(
        name: "pipeline-json", summary: "pipeline.json against the production stage kinds",
        seeds: { [try [UInt8](Data(contentsOf: FuzzFixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("pipeline.json"))),
                  Array(#"{"version": 1, "stages": {"a": {"kind": "ingest", "inputs": {"dataset": "data"}}}}"#.utf8)] }
    ) { bytes in
        let registry = try productionRegistry.get()
        // Relative to the checkout, so the default pipeline's inputs exist and it parses whole.
        let repository = FuzzFixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        _ = try PipelineSpec.parse(Data(bytes), file: repository.appendingPathComponent("pipeline.json"),
                                   baseDirectory: repository, registry: registry)
    }

    static let trainConfig = Harness(
        name: "train-config", summary: "harmose train --config JSON",
        seeds: { [try [UInt8](Data(contentsOf: FuzzFixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("configs/demo-train.json"))),
                  Array(#"{"epochs": 2, "model": {"irreps": "4x0e+2x1o", "layers": 1}}"#.utf8)] }
    ) { bytes in
        let config = try TrainConfig.load(Scratch.file("train.json", bytes))
        try config.validate(file: "train.json")
    }

    static let refineConfig = Harness(
        name: "refine-config", summary: "harmose refine --config JSON",
        seeds: { [Array(#"{"epochs": 2, "learning_rate": 0.001}"#.utf8), Array("{}".utf8)] }
    ) { bytes in
        let config = try RefineConfig.load(Scratch.file("refine.json", bytes))
        try config.validate(file: "refine.json")
    }

    /// A tiny stage-1 model of water's species, for the checkpoint seed.
    static func tinyCheckpoint() throws -> [UInt8] {
        var config = ModelConfig()
        config.irreps = "2x0e+2x1o+1x1e+1x2e+1x2o+1x3o+1x3e+1x4e"
        config.layers = 1
        config.radialCount = 4
        config.radialHidden = 8
        config.cutoff = 4
        config.basis = ["O": [0, 0, 0, 1, 1, 2], "H": [0, 0, 1]]
        let model = try HamiltonianModel<Float>(config: config)
        let url = Scratch.folder.appendingPathComponent("seed-checkpoint.h5")
        try Checkpoint.save(to: url.path, parts: ["model": model.parameters, "config": ModelConfigPart(config)])
        return [UInt8](try Data(contentsOf: url))
    }

    static let checkpoint = Harness(
        name: "checkpoint", summary: "checkpoint HDF5 (model configuration + parameters) loaded for prediction",
        seeds: { [try tinyCheckpoint()] }
    ) { bytes in
        _ = try Predictor(checkpoint: Scratch.file("checkpoint.h5", bytes))
    }
}
