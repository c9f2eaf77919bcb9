// Code identity: which source code computed an artifact. Every stage fingerprint includes the
// digest of the sources of the module that owns the stage kind and of every module of this package
// it links, computed at build time (Plugins/CodeIdentityPlugin runs CodeIdentityTool over the
// files), so editing a module's code makes exactly the stages that run it (and their downstream
// stages) stale, with no version to bump by hand. The digests are defined here once; the tool that
// computes them at build time and the test that recomputes them from the checkout both call these.
import Foundation

public struct CodeIdentity: Sendable, Equatable {
    /// The module that owns the stage kind.
    public let module: String
    /// SHA-256 (hex) over the module and everything of this package it links (`closureDigest`).
    public let digest: String

    public init(module: String, digest: String) {
        self.module = module
        self.digest = digest
    }

    /// SHA-256 over `relative path <TAB> SHA-256 of content <LF>` of a module's files, sorted by
    /// path. Paths are relative to the package root, so two clones in different folders agree.
    public static func moduleDigest(files: [(path: String, sha256: String)]) -> String {
        SHA256.hash(files.sorted { $0.path < $1.path }.map { "\($0.path)\t\($0.sha256)\n" }.joined())
    }

    /// SHA-256 over `module <TAB> module digest <LF>` of a module and the modules it links,
    /// sorted by name.
    public static func closureDigest(_ moduleDigests: [String: String]) -> String {
        SHA256.hash(moduleDigests.sorted { $0.key < $1.key }.map { "\($0.key)\t\($0.value)\n" }.joined())
    }

    /// The module that defines a type, from its fully qualified name ("Training.TrainStageKind").
    public static func definingModule(of type: Any.Type) -> String {
        let name = String(reflecting: type)
        return String(name.prefix { $0 != "." })
    }
}
