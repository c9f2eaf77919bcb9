// Build-tool plugin: gives the target it is applied to (HarmoSECLI, which registers every stage
// kind) a generated file with the source digest of every module of this package it links
// (see Sources/StageAPI/CodeIdentity.swift). Inputs are all those files, so editing any of them
// regenerates the digests; no network, works in a clean clone under `swift build` and `swift test`.
import Foundation
import PackagePlugin

@main
struct CodeIdentityPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let module = target as? SourceModuleTarget else { return [] }
        let local = Set(context.package.targets.map(\.name))
        func linked(_ t: Target) -> [Target] { t.recursiveTargetDependencies.filter { local.contains($0.name) } }
        var modules: [Target] = [module]
        for dep in linked(module) where !modules.contains(where: { $0.name == dep.name }) { modules.append(dep) }

        let output = context.pluginWorkDirectoryURL.appendingPathComponent("GeneratedCodeIdentities.swift")
        var arguments = [output.path, context.package.directoryURL.path]
        var inputs: [URL] = []
        for m in modules.sorted(by: { $0.name < $1.name }) {
            arguments += ["-m", m.name]
            for d in linked(m).map(\.name).sorted() { arguments += ["-d", d] }
            if let source = m as? SourceModuleTarget {
                for file in source.sourceFiles { arguments += ["-f", file.url.path]; inputs.append(file.url) }
            } else if let system = m as? SystemLibraryTarget {
                // module.modulemap and the shim header decide what the C library exposes.
                let dir = system.directoryURL
                for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.sorted() ?? [] where !name.hasPrefix(".") {
                    let url = dir.appendingPathComponent(name)
                    arguments += ["-f", url.path]
                    inputs.append(url)
                }
            }
        }
        return [.buildCommand(displayName: "Hashing the sources of \(module.name) and what it links (code identity)",
                              executable: try context.tool(named: "CodeIdentityTool").url,
                              arguments: arguments, inputFiles: inputs, outputFiles: [output])]
    }
}
