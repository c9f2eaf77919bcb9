// The one list of pipeline stage kinds `harmose run` knows. A module that owns a kind (Formats,
// Graphs, Bands, and later Models/Training) defines a type conforming to StageAPI.StageKind; add
// it here and nowhere else.
import Bands
import Basis
import Formats
import Foundation
import Evaluation
import Pipeline
import StageAPI
import Training

public enum StageKinds {
    /// Production kinds, in the order `harmose run --list-kinds` shows them.
    public static let production: [any StageKind] = [
        IngestStage(),
        OverlapStage(),
        BandsStage(),
        FeaturesStageKind(),
        TrainStageKind(),
        RefineStageKind(),
        PredictStageKind(),
        EvaluateStageKind(),
    ]

    /// Every kind this process registers. The diagnostic kinds (DiagnosticStageKinds.swift) join
    /// only when HARMOSE_DIAGNOSTIC_KINDS=1, for the CLI's own tests and benchmarks.
    public static var all: [any StageKind] {
        production + (diagnosticKindsEnabled ? DiagnosticStageKinds.all : [])
    }

    public static var diagnosticKindsEnabled: Bool {
        ProcessInfo.processInfo.environment["HARMOSE_DIAGNOSTIC_KINDS"] == "1"
    }

    /// The registry `harmose run` validates against: every kind with its code identity.
    public static func registry() throws -> StageRegistry { try StageRegistry(all, codeIdentity: { codeIdentity(of: $0) }) }

    /// The identity of the code that computes `kind`: the build-time digest of the module that
    /// defines its type and of every module of this package that module links
    /// (GeneratedCodeIdentities, written by Plugins/CodeIdentityPlugin). `ownDigests` replaces
    /// per-module digests (tests simulate a source edit with it).
    public static func codeIdentity(of kind: any StageKind, ownDigests: [String: String] = [:]) -> CodeIdentity? {
        let module = CodeIdentity.definingModule(of: type(of: kind))
        guard let dependencies = GeneratedCodeIdentities.dependencies[module] else { return nil }
        var digests: [String: String] = [:]
        for m in [module] + dependencies {
            guard let d = ownDigests[m] ?? GeneratedCodeIdentities.own[m] else { return nil }
            digests[m] = d
        }
        return CodeIdentity(module: module, digest: CodeIdentity.closureDigest(digests))
    }

    /// The build-time table: module → (its own digest, the modules it links, its files relative
    /// to the package root). For tests that check it against the checkout.
    public static var codeIdentityTable: [String: (own: String, dependencies: [String], files: [String])] {
        Dictionary(uniqueKeysWithValues: GeneratedCodeIdentities.own.map { module, own in
            (module, (own, GeneratedCodeIdentities.dependencies[module] ?? [], GeneratedCodeIdentities.files[module] ?? []))
        })
    }
}
