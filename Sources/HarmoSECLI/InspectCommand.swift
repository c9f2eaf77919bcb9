// `harmose inspect`: what a dataset holds — structures, elements, orbitals, blocks, R range,
// sizes, Hermiticity — as text or JSON. A thin shell over Formats (DatasetSource, RecordSummary).
import ArgumentParser
import Formats
import Foundation

public struct InspectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Summarize the structures and Hamiltonians in a dataset.",
        discussion: """
        PATH is one structure folder, a folder of structure folders, or an archive (.tar, .tar.gz, \
        .tar.xz, .zip), in the DeepH-dock or DeepH legacy layout. Every structure is read and \
        checked (missing files, bad keys, shapes, NaN, unknown elements are errors naming the file \
        and field). For each structure it prints atoms and orbitals per element, block counts, the \
        range of lattice shifts R, sizes, and the Hermiticity deviation \
        max |O(R,i,j) − O(−R,j,i)ᵀ|; deviations above --tolerance are warnings.

        Examples:
          harmose inspect data/molecules/water-0000
          harmose inspect data/crystals --json > crystals.json
          harmose inspect dataset.tar.gz --tolerance 1e-4
        """
    )

    @Argument(help: "Structure folder, folder of structure folders, or archive.")
    public var path: String

    @Flag(help: "Print one JSON document (format, structures: [...]) instead of text.")
    public var json = false

    @Option(help: "Hermiticity tolerance (eV for H) above which a warning is reported.")
    public var tolerance: Double = RecordValidation.defaultHermiticityTolerance

    public init() {}

    public func run() throws { print(try report()) }

    public struct Report: Codable, Equatable {
        public var path: String
        public var format: String
        public var structures: [RecordSummary]
    }

    public func makeReport() throws -> Report {
        let url = URL(fileURLWithPath: path)
        let source = try DatasetSource(url: url)
        var summaries: [RecordSummary] = []
        try source.forEachRecord { summaries.append(RecordSummary($0, hermiticityTolerance: tolerance)) }
        return Report(path: path, format: try FormatReader.detect(at: url).rawValue, structures: summaries)
    }

    /// The text or JSON that `run` prints.
    public func report() throws -> String {
        let r = try makeReport()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: try encoder.encode(r), as: UTF8.self)
        }
        let atoms = r.structures.reduce(0) { $0 + $1.atoms }
        let warnings = r.structures.reduce(0) { $0 + $1.warnings.count }
        var lines = ["\(r.path): \(r.structures.count) structure(s), \(r.format), \(atoms) atoms in all, \(warnings) warning(s)"]
        lines += r.structures.map(\.text)
        return lines.joined(separator: "\n")
    }
}
