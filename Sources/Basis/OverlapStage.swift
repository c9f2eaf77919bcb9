// The `overlap` pipeline stage: S from the basis for every structure of its input (structure
// folders or an ingest stage), written as structures/<name>/ (POSCAR, info.json, overlap.h5) plus
// index.tsv — the shape of an ingest artifact, so `predict` takes it as `data` and predicts exactly
// the blocks of S.
import Foundation
import Formats
import StageAPI

public struct OverlapStage: StageKind {
    public let name = "overlap"
    public let summary = "Overlap matrices from the basis set named in each structure's info.json (GPAW dzp + PAW, def2-SVP, …), no DFT: structures/<name>/overlap.h5."
    /// 1: structures/<name>/{POSCAR, info.json, overlap.h5}, index.tsv.
    public let artifactVersion = 1
    public let parameters: [ParameterSpec] = [
        ParameterSpec("threshold", .number, default: 0.0, minimum: 0, maximum: 1,
                      help: "keep a block when some |S| exceeds this (0: every block that is not identically zero, the exact sparsity of finite-range orbitals)"),
        ParameterSpec("basis_path", .array(.string), default: .array([]),
                      help: "folders searched first for basis files (GPAW .basis/setups, NWChem .nw); then info.json basis_path, $GPAW_SETUP_PATH, /usr/share/gpaw-setups"),
        ParameterSpec("max_memory_gib", .number, default: 0.0, minimum: 0,
                      help: "refuse a structure whose S would need more memory than this (0: half the physical memory)"),
    ]
    public let inputs: [InputSpec] = [
        InputSpec("structures", .pathOrStage, help: "structure folders (POSCAR + info.json), a folder of them, or an ingest stage"),
    ]

    public init() {}

    public func run(_ context: StageContext) throws -> [String: JSONValue] {
        var input = context.input("structures")
        let ingestIndex = input.appendingPathComponent(IngestStage.indexFile)
        if FileManager.default.fileExists(atPath: ingestIndex.path) { input = input.appendingPathComponent(IngestStage.structuresFolder) }
        let gib = context.parameters.double("max_memory_gib")
        let job = OverlapJob(resolver: BasisResolver(searchPaths: context.parameters.strings("basis_path")),
                             threshold: context.parameters.double("threshold"),
                             memoryLimit: gib > 0 ? UInt64(gib * 1073741824) : ProcessInfo.processInfo.physicalMemory / 2)
        let owned = try OverlapJob.structureFolders([input]).enumerated().filter { context.partition.owns($0.offset) }.map(\.element)
        let prepared = try owned.map { try job.prepare(name: $0.name, folder: $0.folder) }
        let store = context.outputDirectory.appendingPathComponent(IngestStage.structuresFolder)
        var rows: [String] = [], blocks = 0, atoms = 0, seconds = 0.0
        for (n, p) in prepared.enumerated() {
            let r = try job.write(p, under: store)
            blocks += r.blocks; atoms += p.record.structure.atomCount; seconds += r.seconds
            rows.append("\(p.name)\t\(p.record.structure.atomCount)\t\(r.blocks)\t\(p.calculator.basis.name)")
            context.log(String(format: "%@: %d atoms, %d blocks (basis %@) in %.2f s", p.name, p.record.structure.atomCount, r.blocks, p.calculator.basis.name, r.seconds))
            context.progress(done: n + 1, total: prepared.count)
        }
        try Data(("name\tatoms\tblocks\tbasis\n" + rows.map { $0 + "\n" }.joined()).utf8)
            .write(to: context.outputDirectory.appendingPathComponent(IngestStage.indexFile))
        return ["structures": .int(prepared.count), "atoms": .int(atoms), "blocks": .int(blocks),
                "seconds": .double((seconds * 1000).rounded() / 1000)]
    }
}
