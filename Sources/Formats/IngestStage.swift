// The `ingest` pipeline stage: reads a dataset (a structure folder, a folder of structure folders,
// or an archive of either, in DeepH-dock or DeepH legacy layout, or ABACUS / CP2K run folders),
// validates every record, and
// writes it in HarmoSE's internal store layout — DeepH-dock folders under structures/<name>/,
// with the structure's K_PATH when it has one (folder datasets) — and a per-structure index. Downstream stages (graph, bands, training) read that store.
// Per-structure: with a partition, each rank ingests only the structures it owns.
import Foundation
import StageAPI
import Structures

public struct IngestStage: StageKind {
    public let name = "ingest"
    public let summary = "Validate a DFT dataset (DeepH-dock or legacy folders, ABACUS or CP2K runs, or an archive) and store it as DeepH-dock folders."
    /// 1: structures/<name>/ DeepH-dock folders (+ K_PATH) + index.tsv.
    /// 2: info.json keeps the source's extra keys (`occupation`, `homo_eV`, …) after the modelled ones.
    public let artifactVersion = 2
    public let parameters: [ParameterSpec] = [
        ParameterSpec("hermiticity_tolerance", .number, default: .double(RecordValidation.defaultHermiticityTolerance), minimum: 0,
                      help: "report H or S blocks whose Hermitian partner differs by more than this (eV for H)"),
        ParameterSpec("strict", .boolean, default: false,
                      help: "fail on validation warnings (non-Hermitian data, unpaired blocks) instead of logging them"),
        ParameterSpec("require_overlap", .boolean, default: true,
                      help: "fail on a structure without overlap.h5 unless its basis is orthogonal"),
        ParameterSpec("require_hamiltonian", .boolean, default: true,
                      help: "fail on a structure without a Hamiltonian (false: structures only, e.g. for prediction)"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("dataset", .path, help: "a structure folder (DeepH-dock, DeepH legacy, ABACUS run, CP2K output), a folder of them (any depth), or a .tar/.tar.gz/.tar.xz/.zip of either"),
    ]

    public init() {}

    public static let structuresFolder = "structures"
    public static let indexFile = "index.tsv"
    public static let kpathFile = "K_PATH"

    public func run(_ context: StageContext) throws -> [String: StageAPI.JSONValue] {
        let datasetURL = context.input("dataset")
        let source = try DatasetSource(url: datasetURL)
        let names = try source.structureNames()
        guard !names.isEmpty else { throw FormatError(file: datasetURL.path, message: "the dataset holds no structures") }
        if let duplicate = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw FormatError(file: datasetURL.path, message: "two structures are named \"\(duplicate)\"")
        }
        let tolerance = context.parameters.double("hermiticity_tolerance")
        let strict = context.parameters.bool("strict")
        let requireOverlap = context.parameters.bool("require_overlap")
        let requireHamiltonian = context.parameters.bool("require_hamiltonian")
        let store = context.outputDirectory.appendingPathComponent(IngestStage.structuresFolder)
        try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)

        if context.partition.size > names.count {
            throw FormatError(file: datasetURL.path, message: "\(names.count) structure(s) cannot be shared by \(context.partition.size) MPI ranks: run with at most \(names.count) ranks")
        }
        let owned = names.enumerated().filter { context.partition.owns($0.offset) }.map(\.element)
        // Rows in `names` order whatever order an archive streams its records in (rank merges
        // interleave the ranks' rows by that order).
        let position = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        var rows: [(Int, String)] = []
        var warnings = 0, atoms = 0, maxOrbitals = 0, blocks = 0
        var done = 0
        context.log("ingesting \(owned.count) of \(names.count) structures from \(datasetURL.path)")

        func ingest(_ record: DFTRecord, folder: URL? = nil) throws {
            let file = source.kind == .archive ? "\(datasetURL.path):\(record.name)" : datasetURL.appendingPathComponent(record.name).path
            if requireHamiltonian, record.hamiltonian == nil {
                throw FormatError(file: file, field: "hamiltonian", message: "no Hamiltonian (set params.require_hamiltonian to false to ingest structures only)")
            }
            if requireOverlap, record.overlap == nil, !record.orthogonalBasis {
                throw FormatError(file: file, field: "overlap", message: "no overlap for a non-orthogonal basis (set params.require_overlap to false to accept)")
            }
            let found = RecordValidation.validate(record, hermiticityTolerance: tolerance)
            for w in found { context.log(w.description) }
            if strict, let first = found.first {
                throw FormatError(file: file, field: first.field, message: "\(first.message) (params.strict is true)")
            }
            warnings += found.count
            // Names come from outside (archive members): confined to the store, never replacing.
            let destination = try MemberPath.confined(record.name, in: store, source: file)
            let kpathBytes = try folder.flatMap { try IngestStage.readKPathFile(in: $0) }
            try FormatWriter.write(record, to: destination, format: .deephDock, replacing: false)
            // A structure's own k-path travels with it (fractional k: unaffected by atom order).
            if let kpathBytes {
                try kpathBytes.write(to: destination.appendingPathComponent(IngestStage.kpathFile))
            }
            let s = record.structure
            atoms += s.atomCount
            maxOrbitals = max(maxOrbitals, s.totalOrbitals)
            blocks += record.hamiltonian?.blockCount ?? 0
            let formula = s.species.map { z in "\(Elements.symbol(of: z) ?? "?")\(s.atomicNumbers.filter { $0 == z }.count)" }.joined()
            let periodic = s.lattice.periodic.map { $0 ? "1" : "0" }.joined()
            rows.append((position[record.name] ?? 0, [record.name, formula, "\(s.atomCount)", "\(s.totalOrbitals)", periodic,
                         "\(record.hamiltonian?.blockCount ?? 0)", record.fermiEnergy.map { "\($0)" } ?? "", "\(found.count)"]
                .joined(separator: "\t")))
            done += 1
            context.progress(done: done, total: owned.count)
        }

        switch source.kind {
        case .archive:
            // Archives stream in one pass; records of other ranks are read and skipped.
            let mine = Set(owned)
            try source.forEachRecord { record in
                if mine.contains(record.name) { try ingest(record) }
            }
        case .structureFolder:
            if !owned.isEmpty { try ingest(try FormatReader.readRecord(at: datasetURL), folder: datasetURL) }
        case .folderOfStructures:
            for name in owned {
                let folder = datasetURL.appendingPathComponent(name)
                var record = try FormatReader.readRecord(at: folder)
                record.name = name
                try ingest(record, folder: folder)
            }
        }
        let header = "name\tformula\tatoms\torbitals\tperiodic\th_blocks\tfermi_energy_eV\twarnings\n"
        try Data((header + rows.sorted { $0.0 < $1.0 }.map { $0.1 + "\n" }.joined()).utf8)
            .write(to: context.outputDirectory.appendingPathComponent(IngestStage.indexFile))
        context.log("ingested \(done) structures, \(atoms) atoms, \(warnings) warnings")
        return [
            "structures": .int(done),
            "atoms": .int(atoms),
            "max_orbitals": .int(maxOrbitals),
            "hamiltonian_blocks": .int(blocks),
            "warnings": .int(warnings),
        ]
    }

    /// Largest K_PATH file carried along (a k-path is a few lines).
    public static let maxKPathBytes = 1 << 20

    /// A structure folder's K_PATH bytes, when it has one: a regular file (links are not
    /// followed) of at most `maxKPathBytes`.
    static func readKPathFile(in folder: URL) throws -> Data? {
        let url = folder.appendingPathComponent(kpathFile)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path) else { return nil }
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw FormatError(file: url.path, message: "not a regular file (links and folders are not read)")
        }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        guard size <= maxKPathBytes else {
            throw FormatError(file: url.path, message: "\(size) bytes, over the limit of \(maxKPathBytes) bytes for a K_PATH file")
        }
        do { return try Data(contentsOf: url) } catch {
            throw FormatError(file: url.path, message: "cannot read: \(ErrorText.reason(of: error))")
        }
    }

    public var rankParallelism: RankParallelism { .perStructure }

    /// structures/ moved together by the runner; index.tsv rows interleaved back into order.
    public func merge(_ parts: [StagePart]) throws -> [String: StageAPI.JSONValue] {
        let index = try StagePart.interleavedTable(parts, file: IngestStage.indexFile)
        try Data(index.utf8).write(to: parts[0].directory.appendingPathComponent(IngestStage.indexFile))
        return ["structures": StagePart.sum(parts, "structures"), "atoms": StagePart.sum(parts, "atoms"),
                "max_orbitals": .int(parts.compactMap { $0.metrics["max_orbitals"]?.intValue }.max() ?? 0),
                "hamiltonian_blocks": StagePart.sum(parts, "hamiltonian_blocks"), "warnings": StagePart.sum(parts, "warnings")]
    }

    /// The structure folders of an ingest artifact, in index order (for downstream kinds).
    public static func structureFolders(in artifact: URL) throws -> [(name: String, url: URL)] {
        let index = artifact.appendingPathComponent(indexFile)
        let text: String
        do { text = try String(contentsOf: index, encoding: .utf8) } catch {
            throw FormatError(file: index.path, message: "not an ingest artifact (no \(indexFile))")
        }
        let store = artifact.appendingPathComponent(structuresFolder)
        return text.split(separator: "\n").dropFirst().compactMap { line in
            guard let name = line.split(separator: "\t").first.map(String.init), !name.isEmpty else { return nil }
            return (name, store.appendingPathComponent(name))
        }
    }
}
