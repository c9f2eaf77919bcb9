// Finding predicted Hamiltonians and pairing them with reference structures by name, then reading
// a prediction onto the reference structure's atoms and orbitals.
import Bands
import Foundation
import Formats
import Structures

/// The file names a predicted Hamiltonian may have, in order of preference: what `harmose
/// predict` writes (dock, legacy), then ordinary DFT names (so a structure folder can stand in
/// for a prediction, e.g. to compare two DFT settings).
public enum PredictionFiles {
    public static let names = ["hamiltonian_pred.h5", "hamiltonians_pred.h5", DeepHDock.hamiltonianFile, DeepHLegacy.hamiltonianFile]

    /// The layout a prediction file's name implies.
    public static func layout(of fileName: String) -> DFTFormat {
        fileName.hasPrefix("hamiltonians") ? .deephLegacy : .deephDock
    }

    /// The preferred prediction file directly in `folder`, if any.
    public static func file(in folder: URL) -> URL? {
        for name in names {
            let url = folder.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// Every folder under `root` (itself included, key "") holding a prediction file, by path
    /// relative to `root`; such folders are not searched further, hidden folders are skipped.
    public static func find(in root: URL) throws -> [String: URL] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir) else {
            throw EvaluationError.invalidInput(file: root.path, message: "no such prediction folder")
        }
        if !isDir.boolValue {
            // A bare prediction file stands for its folder.
            guard names.contains(root.lastPathComponent) else {
                throw EvaluationError.invalidInput(file: root.path, message: "not a prediction folder or file (expected one of \(names.joined(separator: ", ")))")
            }
            return ["": root]
        }
        let folders: [String]
        do {
            folders = try DatasetSource.findFolders(under: root) { _, files in names.contains { files.contains($0) } }
        } catch let e as FormatError {
            throw EvaluationError.invalidInput(file: e.file, message: e.message)
        }
        var found: [String: URL] = [:]
        for relative in folders {
            if let file = file(in: relative.isEmpty ? root : root.appendingPathComponent(relative)) { found[relative] = file }
        }
        return found
    }
}

/// One reference structure with the prediction matched to it.
public struct MatchedPair: Sendable, Equatable {
    public var name: String
    public var referenceFolder: URL
    public var predictionFile: URL
}

public enum Matching {
    /// Reference structure folders under `reference` (one folder or a folder of them) paired with
    /// predictions under `predictions`: same relative path, else the same last path component
    /// when that is unique, else — one reference and one prediction — each other. Returns the
    /// pairs in reference order and the prediction names left over.
    /// With `skipMissing`, reference structures without a prediction are left out (returned in
    /// `skipped`) instead of being an error — for predictions of one split of a dataset.
    public static func pair(predictions: URL, reference: URL, skipMissing: Bool = false)
        throws -> (pairs: [MatchedPair], unmatched: [String], skipped: [String]) {
        let source: DatasetSource
        do { source = try DatasetSource(url: reference) } catch let e as FormatError {
            throw EvaluationError.invalidInput(file: e.file, message: "reference: \(e.message)")
        }
        guard source.kind != .archive else {
            throw EvaluationError.invalidInput(file: reference.path, message: "reference archives are not evaluated directly; extract them (or `harmose convert`) to a folder first")
        }
        let names = try source.structureNames()
        let folders = names.map { source.kind == .structureFolder ? reference : reference.appendingPathComponent($0) }
        let found = try PredictionFiles.find(in: predictions)
        guard !found.isEmpty else { throw EvaluationError.noPredictions(root: predictions.path) }
        var byLast: [String: [String]] = [:]
        for key in found.keys { byLast[key.split(separator: "/").last.map(String.init) ?? key, default: []].append(key) }
        var used = Set<String>()
        var pairs: [MatchedPair] = []
        var skipped: [String] = []
        for (name, folder) in zip(names, folders) {
            let last = name.split(separator: "/").last.map(String.init) ?? name
            var key: String?
            if found[name] != nil { key = name }
            else if let c = byLast[last], c.count == 1 { key = c[0] }
            else if names.count == 1, found.count == 1 { key = found.keys.first }
            guard let key, let file = found[key] else {
                if skipMissing { skipped.append(name); continue }
                let expected = predictions.appendingPathComponent(name).appendingPathComponent(PredictionFiles.names[0]).path
                throw EvaluationError.missingPrediction(reference: folder.path, predictionRoot: predictions.path,
                                                        expected: "\(expected) or another of \(PredictionFiles.names.joined(separator: ", "))")
            }
            used.insert(key)
            pairs.append(MatchedPair(name: name, referenceFolder: folder, predictionFile: file))
        }
        guard !pairs.isEmpty else {
            throw EvaluationError.invalidInput(file: predictions.path, message: "no prediction matches a reference structure of \(reference.path) (predictions found: \(found.keys.sorted().prefix(5).joined(separator: ", ")))")
        }
        return (pairs, found.keys.filter { !used.contains($0) }.sorted(), skipped)
    }

    /// Reads the reference record and the prediction laid onto its atoms and orbitals.
    ///
    /// A prediction in the reference's layout is read with the reference's structure files (so
    /// blocks are checked against the reference's atoms and basis exactly as DFT data are). A
    /// prediction in the other layout needs its own structure files beside it: it is read as a
    /// structure of its own and its atoms are matched to the reference's by element and position.
    public static func load(_ pair: MatchedPair) throws -> (reference: BandInput, prediction: BlockOperator) {
        let reference: BandInput
        do { reference = try BandInput.load(structure: pair.referenceFolder) } catch BandsError.missingHamiltonian(_) {
            let format = try FormatReader.detect(at: pair.referenceFolder)
            throw EvaluationError.noReferenceHamiltonian(file: pair.referenceFolder.appendingPathComponent(
                format == .deephDock ? DeepHDock.hamiltonianFile : DeepHLegacy.hamiltonianFile).path)
        }
        let referenceLayout = try FormatReader.detect(at: pair.referenceFolder)
        let predictionLayout = PredictionFiles.layout(of: pair.predictionFile.lastPathComponent)
        if predictionLayout == referenceLayout {
            // The reference's own structure files with the prediction as H (and no S: it is the
            // reference's), so nothing is read twice.
            let own = try readOwnStructure(folder: pair.referenceFolder, file: pair.predictionFile, layout: referenceLayout)
            return (reference, own.hamiltonian ?? BlockOperator())
        }
        let folder = pair.predictionFile.deletingLastPathComponent()
        let own = try readOwnStructure(folder: folder, file: pair.predictionFile, layout: predictionLayout)
        return (reference, try align(own, to: reference.record, file: pair.predictionFile.path))
    }

    /// Reads `file` as the Hamiltonian of the structure whose files are in `folder` (the
    /// reference's, or the prediction's own), through a staging folder of links holding only the
    /// structure files and `file` under the layout's normal name.
    static func readOwnStructure(folder: URL, file: URL, layout: DFTFormat) throws -> DFTRecord {
        let fm = FileManager.default
        let entries = (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
        let structureFiles = layout == .deephDock ? ["POSCAR", "info.json"] : ["element.dat", "lat.dat", "site_positions.dat", "orbital_types.dat", "info.json"]
        guard structureFiles.allSatisfy(entries.contains) else {
            throw EvaluationError.incompatible(file: file.path, field: "layout",
                message: "a \(layout.rawValue) prediction for a reference in the other layout needs its own structure files (\(structureFiles.joined(separator: ", "))) beside it to be converted; or convert the reference with `harmose convert`")
        }
        let normal = layout == .deephDock ? DeepHDock.hamiltonianFile : DeepHLegacy.hamiltonianFile
        let scratch = fm.temporaryDirectory.appendingPathComponent("harmose-eval-\(UUID().uuidString)")
        let staged = scratch.appendingPathComponent(folder.lastPathComponent)
        try fm.createDirectory(at: staged, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: scratch) }
        // Only structure files and the prediction: a DFT H or S lying beside must not be read.
        for entry in structureFiles {
            try fm.createSymbolicLink(at: staged.appendingPathComponent(entry), withDestinationURL: folder.appendingPathComponent(entry).absoluteURL)
        }
        try fm.createSymbolicLink(at: staged.appendingPathComponent(normal), withDestinationURL: file.absoluteURL)
        do {
            return try FormatReader.readRecord(at: staged)
        } catch var e as FormatError {
            if e.file.hasPrefix(staged.path) {
                let rest = String(e.file.dropFirst(staged.path.count + 1))
                e.file = rest == normal ? file.path : folder.appendingPathComponent(rest).path
            }
            e.message = e.message.replacingOccurrences(of: staged.path, with: folder.path)
            throw e
        }
    }

    /// `own`'s Hamiltonian renumbered onto `reference`'s atoms (same element, position within
    /// 1e-3 Å, lattice translations allowed and folded into the block shifts), after checking the bases agree.
    static func align(_ own: DFTRecord, to reference: DFTRecord, file: String) throws -> BlockOperator {
        let r = reference.structure, p = own.structure
        guard p.atomCount == r.atomCount else {
            throw EvaluationError.incompatible(file: file, field: "atoms", message: "the prediction has \(p.atomCount) atoms, the reference \(r.atomCount)")
        }
        for z in Set(r.atomicNumbers) where p.basis[z] != r.basis[z] {
            throw EvaluationError.incompatible(file: file, field: "basis of \(Elements.symbol(of: z) ?? "Z\(z)")",
                message: "shells [\(p.basis[z]?.description ?? "none")] differ from the reference's [\(r.basis[z]!.description)]")
        }
        // Prediction atom a sits at reference atom refIndex[a] translated by lattice vector shift[a].
        var refIndex = [Int](repeating: -1, count: p.atomCount)
        var shift = [LatticeShift](repeating: .zero, count: p.atomCount)
        for k in 0 ..< r.atomCount {
            var found = false
            for a in 0 ..< p.atomCount where refIndex[a] < 0 && p.atomicNumbers[a] == r.atomicNumbers[k] {
                let f = r.lattice.fractional(p.positions[a] - r.positions[k])
                var t = LatticeShift.zero
                for c in 0 ..< 3 where r.lattice.periodic[c] { t[c] = Int(f[c].rounded()) }
                let residual = r.lattice.cartesian(f - Vec3(Double(t.x), Double(t.y), Double(t.z)))
                if norm(residual) < 1e-3 { refIndex[a] = k; shift[a] = t; found = true; break }
            }
            guard found else {
                throw EvaluationError.incompatible(file: file, field: "atoms",
                    message: "no \(Elements.symbol(of: r.atomicNumbers[k]) ?? "?") atom at the position of the reference's atom \(k); the prediction is for another structure")
            }
        }
        var out = BlockOperator()
        guard let h = own.hamiltonian else { return out }
        for (b, key) in h.keys.enumerated() {
            let shape = h.shape(at: b)
            let moved = BlockKey(shift: key.shift &+ shift[key.j] &- shift[key.i], i: refIndex[key.i], j: refIndex[key.j])
            out.append(moved, rows: shape.x, cols: shape.y, values: h.values(at: b))
        }
        return out
    }
}
