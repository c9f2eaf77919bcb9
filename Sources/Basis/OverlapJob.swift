// `harmose overlap` and the `overlap` pipeline stage: for each structure folder (POSCAR +
// info.json naming its basis), S from the basis, written as a DeepH-dock structure folder
// (POSCAR, info.json, overlap.h5) under the output root. Every structure is checked first (basis
// resolves, elements and shells agree, no atoms closer than 0.5 Å, the blocks fit in memory), so a
// bad input fails before anything is computed; each folder is written under a temporary name and
// renamed whole.
import Foundation
import Formats
import StageAPI
import Structures

public struct OverlapJob {
    public var resolver: BasisResolver
    public var threshold: Double
    /// Memory the overlap of one structure may take (bytes); default: half the physical memory.
    public var memoryLimit: UInt64

    public init(resolver: BasisResolver = BasisResolver(), threshold: Double = 0,
                memoryLimit: UInt64 = ProcessInfo.processInfo.physicalMemory / 2) {
        self.resolver = resolver
        self.threshold = threshold
        self.memoryLimit = memoryLimit
    }

    /// (name, folder) of every structure under the inputs (a structure folder or folders of them).
    public static func structureFolders(_ inputs: [URL]) throws -> [(name: String, folder: URL)] {
        var out: [(String, URL)] = []
        for input in inputs {
            if FileManager.default.fileExists(atPath: input.appendingPathComponent(DeepHDock.infoFile).path) {
                out.append((input.lastPathComponent, input))
                continue
            }
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input.path, isDirectory: &isDir), isDir.boolValue else {
                throw BasisError(file: input.path, message: "not a structure folder or a folder of them (archives are not supported here: extract them first)")
            }
            for name in try DatasetSource(url: input).structureNames() { out.append((name, input.appendingPathComponent(name))) }
        }
        return out
    }

    public struct Prepared {
        public var name: String
        public var folder: URL
        public var record: DFTRecord
        public var calculator: OverlapCalculator
        public var estimate: OverlapCalculator.Estimate
    }

    /// Reads, resolves and checks one structure; nothing is computed or written.
    public func prepare(name: String, folder: URL) throws -> Prepared {
        let record = try FormatReader.readRecord(at: folder)
        let basis = try resolver.resolve(record, folder: folder)
        let calculator = OverlapCalculator(basis: basis, elements: record.structure.species, threshold: threshold)
        let estimate = try calculator.estimate(record.structure, source: folder.appendingPathComponent("POSCAR").path)
        if estimate.bytes > memoryLimit {
            throw BasisError(file: folder.path, field: "POSCAR",
                             message: String(format: "the overlap of %d atoms needs ≈ %.1f GiB (%d blocks, %d entries) — more than the %.1f GiB allowed; split the structure or raise --max-memory-gib",
                                             record.structure.atomCount, Double(estimate.bytes) / 1073741824, estimate.blocks, estimate.entries, Double(memoryLimit) / 1073741824))
        }
        return Prepared(name: name, folder: folder, record: record, calculator: calculator, estimate: estimate)
    }

    /// Computes S and writes `root/name/` (POSCAR, info.json with the input's extras, overlap.h5),
    /// streaming S into a chunked, compressed overlap.h5 (memory: one batch of rows). Returns the
    /// block keys (what `predict` needs), the block count and the time.
    @discardableResult
    public func write(_ p: Prepared, under root: URL, progress: ((Int, Int) -> Void)? = nil) throws -> (blocks: Int, seconds: Double, keys: [BlockKey]) {
        let start = Date()
        let destination = root.appendingPathComponent(p.name)
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        var keys: [BlockKey] = []
        try AtomicOutput.writeDirectory(at: destination) { staging in
            var out = p.record
            out.hamiltonian = nil
            out.overlap = nil
            let folder = staging.appendingPathComponent("tmp-record")
            try FormatWriter.write(out, to: folder, format: .deephDock)
            for f in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
                try FileManager.default.moveItem(at: folder.appendingPathComponent(f), to: staging.appendingPathComponent(f))
            }
            try FileManager.default.removeItem(at: folder)
            let writer = try StreamingOperatorWriter(url: staging.appendingPathComponent(DeepHDock.overlapFile))
            let counts = p.record.structure.orbitalCounts
            try p.calculator.streamOverlap(of: p.record.structure, progress: progress) { key, values in
                keys.append(key)
                try writer.append(key, rows: counts[key.i], cols: counts[key.j], values: values)
            }
            try writer.finish()
        }
        return (keys.count, Date().timeIntervalSince(start), keys)
    }
}

extension OverlapCalculator {
    public struct Estimate: Sendable {
        public var blocks: Int
        public var entries: Int
        public var bytes: UInt64
    }

    /// Blocks and memory of S before computing it: every pair within the basis range (the PAW
    /// terms add no pairs beyond it in practice; 2× covers the row buffers and the final copy).
    /// Also rejects atoms closer than `minimumDistance`.
    public func estimate(_ structure: Structure, source: String) throws -> Estimate {
        let range = gaussian != nil ? pairRange : 2 * (orbitalCutoff.values.max() ?? 0) * Self.bohr + 1e-9
        let near = try NeighborGraphBuilderProxy.edges(structure, cutoff: Self.minimumDistance)
        if let e = near.first {
            throw BasisError(file: source, field: "atoms \(e.i) and \(e.j)",
                             message: String(format: "are %.3f Å apart (image %@), closer than %.1f Å", e.distance, "\(e.shift)", Self.minimumDistance))
        }
        let counts = structure.orbitalCounts
        let (blocks, entries) = try NeighborGraphBuilderProxy.pairSums(structure, cutoff: range, counts: counts)
        return Estimate(blocks: blocks, entries: entries, bytes: UInt64(entries) * 8 * 2 + UInt64(blocks) * 64)
    }
}
