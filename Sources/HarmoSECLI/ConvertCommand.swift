// `harmose convert`: DeepH-dock, DeepH legacy, ABACUS and CP2K in; DeepH-dock, DeepH legacy and
// ABACUS CSR text out; for one structure, a folder of them, or an archive.
// A thin shell over Formats (DatasetSource → FormatWriter).
import ArgumentParser
import Formats
import Foundation
import StageAPI
import Structures

extension DFTFormat: ExpressibleByArgument {}

public struct ConvertCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert DFT Hamiltonian data: DeepH-dock, DeepH legacy, ABACUS, CP2K in; DeepH-dock, DeepH legacy, ABACUS CSR out.",
        discussion: """
        SRC is one structure folder, a folder of structure folders (found at any depth), or an \
        archive (.tar, .tar.gz/.tgz, .tar.xz, .zip) of either; the input layout is detected per \
        structure. Archives are streamed: nothing is extracted to disk. A structure folder is a \
        DeepH-dock or DeepH legacy folder, an ABACUS LCAO run (STRU + OUT.*/running_scf.log and \
        H(R)/S(R) CSR text from out_mat_hs2, or the OUT.* folder itself), or a CP2K output folder \
        (<project>.out and the KS/S CSR text of &KS_CSR_WRITE/&S_CSR_WRITE with REAL_SPACE).

        For one structure, DST is the output structure folder. Otherwise DST is a folder that \
        mirrors SRC's names: SRC/molecules/water-0001 → DST/molecules/water-0001.

        Output is written to a temporary folder and renamed into place when every structure has \
        converted; on any error DST is left untouched. An existing DST is replaced only when it is \
        empty or holds structure folders (an earlier conversion); a file or a folder holding \
        anything else is refused. Member names that could leave DST (`..`, absolute paths, drive \
        letters, control characters, overlong names) are refused, naming the archive and member.

        Orbital order, signs and units are converted (legacy: OpenMX order, 1-based atoms; dock: \
        m = −l…l, 0-based, atoms grouped by element; ABACUS: m = 0, +1, −1, … with (−1)^|m| \
        signs, Rydberg and Bohr; CP2K: Hartree); entries are written as Float64, ABACUS CSR as \
        ABACUS prints it (Ry, %.8e). Non-Hermitian data is reported as a warning on stderr. See \
        docs/formats.md for the conversion tables.

        Examples:
          harmose convert deeph-legacy/MoTe2 out/MoTe2 --to deeph-dock
          harmose convert data/molecules out/molecules-legacy --to deeph-legacy
          harmose convert dataset.tar.gz out/dataset --to deeph-dock
          harmose convert MoS2/OUT.ABACUS out/MoS2 --to deeph-dock
          harmose convert out/MoS2 out/MoS2-abacus --to abacus-csr
          harmose convert cp2k-runs out/cp2k --to deeph-dock
        """
    )

    @Argument(help: "Structure folder, folder of structure folders, or archive to read.")
    public var source: String

    @Argument(help: "Output folder (replaced whole if it holds only structure folders).")
    public var destination: String

    @Option(name: .customLong("to"), help: ArgumentHelp("Output layout: deeph-dock, deeph-legacy or abacus-csr.", valueName: "layout"))
    public var format: DFTFormat

    @Flag(name: .shortAndLong, help: "Print nothing but warnings and errors.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        if format == .cp2k { throw ValidationError("--to cp2k: CP2K output is read, not written; use deeph-dock, deeph-legacy or abacus-csr") }
    }

    public func run() throws {
        let converted = try execute { line in if !quiet { print(line) } }
        if !quiet { print("converted \(converted.count) structure(s) to \(format.rawValue) in \(destination)") }
    }

    /// Converts and returns the names written; `log` receives one line per structure.
    @discardableResult
    public func execute(log: (String) -> Void = { _ in }) throws -> [String] {
        let src = URL(fileURLWithPath: source)
        let dst = URL(fileURLWithPath: destination)
        let dataset = try DatasetSource(url: src)
        var names: [String] = []
        // Folders can be counted up front (cheap); archives would need an extra pass, so no total.
        let total = dataset.kind == .archive ? nil : try dataset.structureNames().count
        let start = Date()
        func convert(_ record: DFTRecord, to url: URL, replacing: Bool = true) throws {
            for warning in RecordValidation.validate(record) {
                FileHandle.standardError.write(Data((warning.description + "\n").utf8))
            }
            try FormatWriter.write(record, to: url, format: format, replacing: replacing)
            names.append(record.name)
            let progress = "[" + progressText(done: names.count, total: total ?? 0, elapsed: Date().timeIntervalSince(start)) + "]"
            log("\(progress) \(record.name): \(record.structure.atomCount) atoms, \(record.hamiltonian?.blockCount ?? 0) H blocks")
        }
        try DatasetSource.checkReplaceableOutput(dst)
        if dataset.kind == .structureFolder {
            try dataset.forEachRecord { try convert($0, to: dst) }
        } else {
            try AtomicOutput.writeDirectory(at: dst) { tmp in
                // Record names come from outside (archive members): each is confined to the
                // fresh folder and may not replace another.
                try dataset.forEachRecord { record in
                    let source = dataset.kind == .archive ? "\(src.path):\(record.name)" : src.appendingPathComponent(record.name).path
                    try convert(record, to: try MemberPath.confined(record.name, in: tmp, source: source), replacing: false)
                }
            }
        }
        return names
    }
}
