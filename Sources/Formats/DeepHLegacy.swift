// DeepH legacy structure folders (DeepH-pack / DeepH-E3 preprocessing output): lat.dat (3×3,
// columns are lattice vectors, Å), rlat.dat (columns are reciprocal vectors, with 2π),
// site_positions.dat (3×N, Å), element.dat (atomic numbers), orbital_types.dat (l of each shell,
// one line per atom), info.json (fermi_level, isspinful, isorthogonal, nsites; other keys are
// carried through as extras), and
// hamiltonians.h5 / overlaps.h5 with one (n_i, n_j) dataset per block named "[Rx, Ry, Rz, i, j]"
// with 1-based atoms; orbitals in OpenMX order (converted through `OrbitalOrder`). Atoms may come
// in any order; it is kept on reading and on writing.
import Foundation
import HDF5Kit
import StageAPI
import Structures

public enum DeepHLegacy {
    public static let hamiltonianFile = "hamiltonians.h5"
    public static let overlapFile = "overlaps.h5"
    /// The info.json keys DFTRecord's fields hold; others are carried as `DFTRecord.extraInfo`, as
    /// for DeepH-dock, so dock → legacy → dock keeps `occupation` and the like.
    public static let modelledInfoKeys = ["nsites", "isorthogonal", "isspinful", "fermi_level"]

    // MARK: Reading

    static func read(_ files: StructureFiles, name: String) throws -> DFTRecord {
        let lat = try numberRows(files, "lat.dat")
        guard lat.count == 3, lat.allSatisfy({ $0.count == 3 }) else {
            throw FormatError(file: files.displayPath("lat.dat"), message: "expected a 3×3 matrix (columns are the lattice vectors)")
        }
        let vectors = (0 ..< 3).map { c in Vec3(lat[0][c], lat[1][c], lat[2][c]) }
        try InputLimits.checkLattice(Lattice(vectors: vectors), file: files.displayPath("lat.dat"), field: "columns (lattice vectors)")

        let elementRows = try numberRows(files, "element.dat")
        let elementValues = elementRows.flatMap { $0 }
        try InputLimits.check(elementValues.count, atMost: InputLimits.maxAtoms, "atoms", file: files.displayPath("element.dat"))
        var atomicNumbers: [Int] = []
        for (k, v) in elementValues.enumerated() {
            guard v == v.rounded(), abs(v) < 1000, let z = Elements.symbol(of: Int(v)).map({ _ in Int(v) }) else {
                throw FormatError(file: files.displayPath("element.dat"), field: "atom \(k + 1)", message: "unknown element (atomic number \(v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(v)))")
            }
            atomicNumbers.append(z)
        }
        let n = atomicNumbers.count

        let sites = try numberRows(files, "site_positions.dat")
        // np.savetxt writes a 3×1 matrix as three lines of one number; both shapes read the same.
        guard sites.count == 3, sites.allSatisfy({ $0.count == n }) else {
            throw FormatError(file: files.displayPath("site_positions.dat"), message: "expected 3 rows of \(n) numbers (one column per atom), found \(sites.count) rows of \(sites.map(\.count))")
        }
        let positions = (0 ..< n).map { a in Vec3(sites[0][a], sites[1][a], sites[2][a]) }

        let orbitalFile = files.displayPath("orbital_types.dat")
        let orbitalLines = try files.text("orbital_types.dat").split(whereSeparator: \.isNewline)
            .map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }) }.filter { !$0.isEmpty }
        guard orbitalLines.count == n else {
            throw FormatError(file: orbitalFile, message: "\(orbitalLines.count) lines for \(n) atoms in element.dat")
        }
        var basis: [Int: OrbitalShells] = [:]
        for (a, fields) in orbitalLines.enumerated() {
            try InputLimits.check(fields.count, atMost: InputLimits.maxShellsPerSpecies, "shells", file: orbitalFile, field: "line \(a + 1)")
            let ls = try fields.map { f -> Int in
                guard let l = Int(f), (0 ... 6).contains(l) else {
                    throw FormatError(file: orbitalFile, field: "line \(a + 1)", message: "'\(f)' is not an angular momentum 0…6")
                }
                return l
            }
            let shells = OrbitalShells(ls)
            if let known = basis[atomicNumbers[a]], known != shells {
                throw FormatError(file: orbitalFile, field: "line \(a + 1)", message: "\(Elements.symbol(of: atomicNumbers[a])!) has shells [\(shells)] here but [\(known)] on an earlier atom; one basis per element is required")
            }
            basis[atomicNumbers[a]] = shells
        }

        let info = try JSONFields(data: try files.data("info.json"), file: files.displayPath("info.json"))
        if try info.bool("isspinful") == true {
            throw FormatError(file: info.file, field: "isspinful", message: "spinful (2-component) data is not supported")
        }
        if let sites = try info.int("nsites"), sites != n {
            throw FormatError(file: info.file, field: "nsites", message: "\(sites), but element.dat lists \(n) atoms")
        }

        var structure = Structure(lattice: Lattice(vectors: vectors), atomicNumbers: atomicNumbers,
                                  positions: positions, basis: basis)
        let hamiltonian = try files.contains(hamiltonianFile)
            ? readOperator(try files.hdf5(hamiltonianFile), structure: structure) : nil
        let overlap = try files.contains(overlapFile)
            ? readOperator(try files.hdf5(overlapFile), structure: structure) : nil
        structure.lattice.periodic = inferPeriodicity([hamiltonian, overlap])
        try InputLimits.checkAtomDistances(structure, file: files.displayPath("site_positions.dat"), field: "columns (atom positions)", oneBased: true)
        return DFTRecord(name: name, structure: structure, hamiltonian: hamiltonian, overlap: overlap,
                         fermiEnergy: try info.double("fermi_level"), spinful: false,
                         orthogonalBasis: try info.bool("isorthogonal") ?? false,
                         extraInfo: try info.extras(excluding: modelledInfoKeys))
    }

    /// Whitespace-separated numbers, one array per non-empty line.
    static func numberRows(_ files: StructureFiles, _ name: String) throws -> [[Double]] {
        let text = try files.text(name)
        var rows: [[Double]] = []
        for (k, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," })
            if fields.isEmpty { continue }
            rows.append(try fields.map { f in
                guard let v = Double(f), v.isFinite else {
                    throw FormatError(file: files.displayPath(name), field: "line \(k + 1)", message: "'\(f)' is not a finite number")
                }
                return v
            })
        }
        return rows
    }

    /// Parses "[Rx, Ry, Rz, i, j]" (1-based atoms) into a 0-based key.
    static func parseKey(_ text: String) -> BlockKey? {
        if let key = parseCanonicalKey(text) { return key }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]") else { return nil }
        let parts = trimmed.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
        let v = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        // Shifts bounded like DeepH-dock's; Int.min would overflow on the 1-based → 0-based − 1.
        guard parts.count == 5, v.count == 5, v[0 ..< 3].allSatisfy({ (-maxShift ... maxShift).contains($0) }), v[3] > Int.min, v[4] > Int.min else { return nil }
        return BlockKey(v[0], v[1], v[2], v[3] - 1, v[4] - 1)
    }

    /// "[Rx, Ry, Rz, i, j]" exactly as DeepH writes it (ASCII digits, optional '-', ", " or ","
    /// between fields), read from its bytes: the key of every block, 10⁵ per file, where the
    /// general parse's Foundation trimming cost more than libhdf5's read. nil: not in that form
    /// (then `parseKey` decides, with the same bounds).
    static func parseCanonicalKey(_ text: String) -> BlockKey? {
        var fields = (0, 0, 0, 0, 0)
        var count = 0
        let done: Bool? = text.utf8.withContiguousStorageIfAvailable { bytes in
            guard bytes.count >= 11, bytes.count <= 120, bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]") else { return false }
            var k = 1
            let end = bytes.count - 1
            while count < 5 {
                if count > 0 {
                    guard k < end, bytes[k] == UInt8(ascii: ",") else { return false }
                    k += 1
                    if k < end, bytes[k] == UInt8(ascii: " ") { k += 1 }
                }
                let negative = k < end && bytes[k] == UInt8(ascii: "-")
                if negative { k += 1 }
                var value = 0, digits = 0
                while k < end, (UInt8(ascii: "0") ... UInt8(ascii: "9")).contains(bytes[k]) {
                    guard digits < 9 else { return false }   // longer numbers: the general parse
                    value = value * 10 + Int(bytes[k] - UInt8(ascii: "0"))
                    digits += 1; k += 1
                }
                guard digits > 0 else { return false }
                if negative { value = -value }
                switch count {
                case 0: fields.0 = value
                case 1: fields.1 = value
                case 2: fields.2 = value
                case 3: fields.3 = value
                default: fields.4 = value
                }
                count += 1
            }
            return k == end
        }
        guard done == true else { return nil }
        let shift = -maxShift ... maxShift
        guard shift.contains(fields.0), shift.contains(fields.1), shift.contains(fields.2) else { return nil }
        return BlockKey(fields.0, fields.1, fields.2, fields.3 - 1, fields.4 - 1)
    }

    static func readOperator(_ file: HDF5File, structure: Structure) throws -> BlockOperator {
        try mappingHDF5Errors {
            let counts = structure.orbitalCounts
            let index = structure.atomicNumbers.map { OrbitalOrder.openMXIndex(shells: structure.basis[$0]!) }
            var parsed: [(BlockKey, String)] = []
            let names = try file.memberNames()
            try InputLimits.check(names.count, atMost: InputLimits.maxBlocks, "blocks", file: file.path)
            for name in names {
                guard let key = parseKey(name) else {
                    throw FormatError(file: file.path, field: name, message: "key does not parse as \"[Rx, Ry, Rz, i, j]\" (integers, 1-based atoms)")
                }
                for atom in [key.i, key.j] where !(0 ..< structure.atomCount).contains(atom) {
                    throw FormatError(file: file.path, field: name, message: "atom index \(atom + 1) out of range 1…\(structure.atomCount) (1-based)")
                }
                parsed.append((key, name))
            }
            // Sorted keys make the internal block order independent of HDF5's name order.
            parsed.sort { $0.0 < $1.0 }
            var op = BlockOperator()
            for (key, name) in parsed {
                guard !op.contains(key) else {
                    throw FormatError(file: file.path, field: name, message: "duplicate block (two keys name \(key) after parsing)")
                }
                let kind = try file.datasetInfo(name).kind
                guard kind == .float64 || kind == .float32 else {
                    throw FormatError(file: file.path, field: name, message: "stored as \(kind) integers; expected floating point (float64 or float32)")
                }
                let block = try file.readDoubles(name)
                let rows = counts[key.i], cols = counts[key.j]
                guard block.shape == [rows, cols] else {
                    throw FormatError(file: file.path, field: name, message: "shape \(block.shape) inconsistent with the orbitals of atoms \(key.i + 1) and \(key.j + 1): expected [\(rows), \(cols)]")
                }
                if let bad = block.values.firstIndex(where: { !$0.isFinite }) {
                    throw FormatError(file: file.path, field: name, message: "non-finite value \(block.values[bad]) at (\(bad / cols), \(bad % cols))")
                }
                op.append(key, rows: rows, cols: cols,
                          values: OrbitalOrder.fromOpenMX(block.values, rowIndex: index[key.i], colIndex: index[key.j]))
            }
            return op
        }
    }

    // MARK: Writing

    static func write(_ record: DFTRecord, to dir: URL) throws {
        let s = record.structure
        // Shortest round-trip decimal: exact on re-reading, unlike numpy's "%.16f" for small values.
        func fixed(_ x: Double) -> String { "\(x == 0 ? 0 : x)" }
        func write(_ text: String, _ name: String) throws {
            try text.write(to: dir.appendingPathComponent(name), atomically: false, encoding: .utf8)
        }
        let v = s.lattice.vectors
        try write((0 ..< 3).map { r in (0 ..< 3).map { c in fixed(v[c][r]) }.joined(separator: " ") + "\n" }.joined(), "lat.dat")
        let b = s.lattice.reciprocalVectors
        try write((0 ..< 3).map { r in (0 ..< 3).map { c in fixed(b[c][r]) }.joined(separator: " ") + "\n" }.joined(), "rlat.dat")
        try write((0 ..< 3).map { r in s.positions.map { fixed($0[r]) }.joined(separator: " ") + "\n" }.joined(), "site_positions.dat")
        try write(s.atomicNumbers.map { "\($0)\n" }.joined(), "element.dat")
        try write(s.atomicNumbers.map { s.basis[$0]!.ls.map(String.init).joined(separator: "  ") + "\n" }.joined(), "orbital_types.dat")
        let modelled: [(String, JSONValue)] = [
            ("nsites", .int(s.atomCount)),
            ("isorthogonal", .bool(record.orthogonalBasis)),
            ("isspinful", .bool(record.spinful)),
            ("fermi_level", record.fermiEnergy.map { .double($0) } ?? .null),
        ]
        assert(modelled.map(\.0) == modelledInfoKeys)
        try write(try JSONFields.infoText(modelled, extras: record.extraInfo, file: dir.appendingPathComponent("info.json").path), "info.json")
        if let h = record.hamiltonian { try writeOperator(h, structure: s, to: dir.appendingPathComponent(hamiltonianFile)) }
        if let o = record.overlap { try writeOperator(o, structure: s, to: dir.appendingPathComponent(overlapFile)) }
    }

    static func writeOperator(_ op: BlockOperator, structure: Structure, to url: URL) throws {
        let index = structure.atomicNumbers.map { OrbitalOrder.openMXIndex(shells: structure.basis[$0]!) }
        let file = try HDF5File(creatingAt: url.path)
        for (b, key) in op.keys.enumerated() {
            let shape = op.shape(at: b)
            let name = "[\(key.shift.x), \(key.shift.y), \(key.shift.z), \(key.i + 1), \(key.j + 1)]"
            try file.write(name, doubles: OrbitalOrder.toOpenMX(op.values(at: b), rowIndex: index[key.i], colIndex: index[key.j]),
                           shape: [shape.x, shape.y])
        }
        try file.flush()
    }
}
